package event

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"testing"
)

// WriteContentBase64 writes the text given to SetContentBase64 without
// its CR and LF bytes, wherever they are, and encodes Content otherwise.
func TestWriteContentBase64(t *testing.T) {
	content := []byte("any bytes \x00\xff will do, the length is not a multiple of three")
	std := base64.StdEncoding.EncodeToString(content)
	for name, text := range map[string]string{
		"crlf lines":  std[:76] + "\r\n" + std[76:] + "\r\n",
		"lf lines":    std[:8] + "\n" + std[8:16] + "\n" + std[16:],
		"stray cr":    std[:5] + "\r" + std[5:] + "\r",
		"one line":    std,
		"blank lines": "\r\n\r\n" + std[:4] + "\r\n\n\r" + std[4:] + "\n\n",
		"not encoded": "",
	} {
		var a Attachment
		a.Content = content
		if name != "not encoded" {
			a.SetContentBase64([]byte(text))
		}
		// A MIME body's trailing CRLF does not keep it off the stride path.
		if name == "crlf lines" && a.lineLen != 76 {
			t.Errorf("%s: lineLen = %d, want 76 (written by stride)", name, a.lineLen)
		}
		var b strings.Builder
		if err := a.WriteContentBase64(&b); err != nil || b.String() != std {
			t.Errorf("%s: wrote %q, %v; want %q", name, b.String(), err, std)
		}
	}
}

// regularLines recognises MIME's fixed-length CRLF lines, and nothing
// that has a line break anywhere else.
func TestRegularLines(t *testing.T) {
	for text, want := range map[string]int{
		"AAAA\r\nBBBB\r\nCC":     4,
		"AAAA\r\nBBBB\r\nCCCC":   4,
		"AAAA\r\nBBBB":           4,
		"AAAA\r\nBBBBB":          0, // last line too long
		"AAAA\r\nBB\r\nCCCC":     0, // a short line inside
		"AA\rA\r\nBBBB\r\nCC":    0, // a stray CR
		"AAAA\r\nBB\nB\r\nCC":    0, // a stray LF
		"AAAA\nBBBB\nCC":         0, // LF lines
		"AAAA\r\n\r\nBBBB\r\nCC": 0, // a blank line
		"\r\nAAAA":               0,
		"AAAA":                   0, // one line: nothing to gain
		"":                       0,
	} {
		if got := regularLines([]byte(text)); got != want {
			t.Errorf("regularLines(%q) = %d, want %d", text, got, want)
		}
	}
}

// Whatever the text, WriteContentBase64 writes it without CR and LF.
func FuzzWriteContentBase64(f *testing.F) {
	std := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("mailhook \x00\xff"), 40))
	for _, seed := range []string{
		"AAAA\r\nBBBB\r\nCC", "AA\rA\r\nBBBB\r\nCC", "AAAA\r\nBB\nB\r\nCC\r\n\r\n",
		std[:76] + "\r\n" + std[76:152] + "\r\n" + std[152:] + "\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		a := Attachment{Content: []byte{}}
		a.SetContentBase64(bytes.Clone(text))
		var b bytes.Buffer
		if err := a.WriteContentBase64(&b); err != nil {
			t.Fatal(err)
		}
		want := bytes.ReplaceAll(bytes.ReplaceAll(text, []byte("\r"), nil), []byte("\n"), nil)
		if !bytes.Equal(b.Bytes(), want) {
			t.Errorf("WriteContentBase64 of %q = %q, want %q", text, b.Bytes(), want)
		}
	})
}

// BenchmarkWriteContentBase64: the attachment of a 1 MB message, written
// twice per streamed attempt.
func BenchmarkWriteContentBase64(b *testing.B) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 48<<10) // 768 KiB
	std := base64.StdEncoding.EncodeToString(content)
	var text []byte
	for len(std) > 76 {
		text = append(append(text, std[:76]...), "\r\n"...)
		std = std[76:]
	}
	text = append(append(text, std...), "\r\n"...)
	for _, bc := range []struct {
		name string
		text []byte
	}{
		{"crlf76", text},
		{"lf76", bytes.ReplaceAll(text, []byte("\r\n"), []byte("\n"))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a := Attachment{Content: content}
			a.SetContentBase64(bc.text)
			w := bufio.NewWriterSize(io.Discard, 64<<10)
			b.SetBytes(int64(len(content)))
			b.ReportAllocs()
			for b.Loop() {
				if err := a.WriteContentBase64(w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
