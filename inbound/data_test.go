package inbound

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// refDecode is the obviously-correct reference for dataReader: it splits
// the whole input into lines at CRLF, bare LF and bare CR, ends at a line
// that is exactly "." terminated by CRLF and preceded by CRLF (or the data
// start), removes the leading dot of any other line that has more than the
// dot and does not follow a bare CR, and writes every line back with CRLF. ended is false when the input
// stops before the end marker; rest is what follows the marker.
func refDecode(in []byte) (out []byte, ended, bare bool, rest []byte) {
	pos, prevCRLF, prevCR := 0, true, false
	out = []byte{}
	for {
		i := pos
		for i < len(in) && in[i] != '\r' && in[i] != '\n' {
			i++
		}
		if i == len(in) {
			return out, false, bare, nil
		}
		line := in[pos:i]
		termLen, crlf := 1, false
		if in[i] == '\r' {
			if i+1 == len(in) {
				return out, false, bare, nil // can't tell yet
			}
			if in[i+1] == '\n' {
				termLen, crlf = 2, true
			}
		}
		if prevCRLF && crlf && string(line) == "." {
			return out, true, bare, in[i+2:]
		}
		if !crlf {
			bare = true
		}
		if len(line) > 1 && line[0] == '.' && !prevCR {
			line = line[1:]
		}
		out = append(out, line...)
		out = append(out, '\r', '\n')
		prevCRLF, prevCR = crlf, in[i] == '\r' && !crlf
		pos = i + termLen
	}
}

// chunkReader returns data in reads of the sizes given (cycled, each ≥ 1).
type chunkReader struct {
	data  []byte
	sizes []byte
	k     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1 << 30
	if len(c.sizes) > 0 {
		n = int(c.sizes[c.k%len(c.sizes)])%64 + 1
		c.k++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// readAllVia reads d with Read calls (useWriteTo false) or WriteTo.
func readAllVia(d *dataReader, useWriteTo bool, chunk int) ([]byte, error) {
	var buf bytes.Buffer
	if useWriteTo {
		_, err := d.WriteTo(&buf)
		return buf.Bytes(), err
	}
	p := make([]byte, chunk)
	for {
		n, err := d.Read(p)
		buf.Write(p[:n])
		if err == io.EOF {
			return buf.Bytes(), nil
		}
		if err != nil {
			return buf.Bytes(), err
		}
	}
}

// checkDataReader runs dataReader over in (split per sizes, through a
// bufio.Reader of bufSize) and compares it with refDecode.
func checkDataReader(t *testing.T, in, sizes []byte, bufSize int, useWriteTo bool, readChunk int) {
	t.Helper()
	wantOut, wantEnded, wantBare, wantRest := refDecode(in)
	for _, reject := range []bool{false, true} {
		br := bufio.NewReaderSize(&chunkReader{data: in, sizes: sizes}, bufSize)
		d := newDataReader(br, reject, 0, 0)
		got, err := readAllVia(d, useWriteTo, readChunk)
		switch {
		case reject && wantBare:
			if !errors.Is(err, ErrBareNewline) {
				t.Fatalf("reject %q: err = %v, want ErrBareNewline", in, err)
			}
			derr := d.drain()
			if (derr == nil) != wantEnded {
				t.Fatalf("reject %q: drain = %v, want ended=%v", in, derr, wantEnded)
			}
		case wantEnded:
			if err != nil {
				t.Fatalf("%q (reject=%v): err = %v", in, reject, err)
			}
			if !bytes.Equal(got, wantOut) {
				t.Fatalf("%q (reject=%v):\n got %q\nwant %q", in, reject, got, wantOut)
			}
		default:
			if !errors.Is(err, ErrTransferAborted) {
				t.Fatalf("%q (reject=%v): err = %v, want ErrTransferAborted", in, reject, err)
			}
			if !bytes.HasPrefix(wantOut, got) && !bytes.HasPrefix(got, wantOut) {
				t.Fatalf("%q: partial output %q diverges from %q", in, got, wantOut)
			}
		}
		if wantEnded {
			rest, _ := io.ReadAll(br)
			if !bytes.Equal(rest, wantRest) {
				t.Fatalf("%q (reject=%v): rest %q, want %q", in, reject, rest, wantRest)
			}
		}
	}
}

func TestDataReader(t *testing.T) {
	tests := []struct {
		name, in, want string
		ended, bare    bool
	}{
		{"empty message", ".\r\n", "", true, false},
		{"one line", "hi\r\n.\r\n", "hi\r\n", true, false},
		{"stuffed dot", "..x\r\n..\r\n.\r\n", ".x\r\n.\r\n", true, false},
		{"dot mid line", "a.b\r\n.\r\n", "a.b\r\n", true, false},
		{"bare LF normalised", "a\nb\r\n.\r\n", "a\r\nb\r\n", true, true},
		{"bare CR normalised", "a\rb\r\n.\r\n", "a\r\nb\r\n", true, true},
		{"LF dot LF not end", "a\n.\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", true, true},
		{"CRLF dot LF not end", "a\r\n.\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", true, true},
		{"LF dot CRLF not end", "a\n.\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", true, true},
		{"CR dot CR not end", "a\r.\rb\r\n.\r\n", "a\r\n.\r\nb\r\n", true, true},
		{"CRLF dot CR not end", "a\r\n.\rb\r\n.\r\n", "a\r\n.\r\nb\r\n", true, true},
		{"CR dot CRLF not end", "a\r.\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", true, true},
		{"unterminated", "abc\r\n", "", false, false},
		{"binary 8bit", "caf\xc3\xa9 \x00\xff\r\n.\r\n", "caf\xc3\xa9 \x00\xff\r\n", true, false},
		{"CR before CRLF", "a\r\r\n.\r\n", "a\r\n\r\n", true, true},
		{"CR dot text kept", "mac\r.profile\rx\r..two\r\n.\r\n", "mac\r\n.profile\r\nx\r\n..two\r\n", true, true},
		{"LF dot text unstuffed", "a\n.b\r\n.\r\n", "a\r\nb\r\n", true, true},
		{"trailing rest", "x\r\n.\r\nQUIT\r\n", "x\r\n", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, ended, bare, _ := refDecode([]byte(tc.in))
			if ended != tc.ended || bare != tc.bare || (ended && string(out) != tc.want) {
				t.Fatalf("reference: %q ended=%v bare=%v", out, ended, bare)
			}
			for _, bufSize := range []int{16, 17, 4096} {
				for _, wt := range []bool{false, true} {
					checkDataReader(t, []byte(tc.in), nil, bufSize, wt, 7)
					checkDataReader(t, []byte(tc.in), []byte{0}, bufSize, wt, 1)
					checkDataReader(t, []byte(tc.in), []byte{1, 2, 0, 3}, bufSize, wt, 3)
				}
			}
		})
	}
}

func TestDataReaderLimits(t *testing.T) {
	t.Run("too large then drain", func(t *testing.T) {
		in := strings.Repeat("0123456789\r\n", 100) + ".\r\nNOOP\r\n"
		br := bufio.NewReaderSize(strings.NewReader(in), 64)
		d := newDataReader(br, false, 100, 0)
		_, err := io.Copy(io.Discard, d)
		if !errors.Is(err, ErrMessageTooLarge) {
			t.Fatalf("err = %v", err)
		}
		if err := d.drain(); err != nil {
			t.Fatalf("drain: %v", err)
		}
		if rest, _ := io.ReadAll(br); string(rest) != "NOOP\r\n" {
			t.Fatalf("rest %q", rest)
		}
	})
	t.Run("exactly max", func(t *testing.T) {
		br := bufio.NewReader(strings.NewReader("0123456789\r\n.\r\n"))
		d := newDataReader(br, false, 12, 0)
		if b, err := io.ReadAll(d); err != nil || len(b) != 12 {
			t.Fatalf("%q %v", b, err)
		}
	})
	t.Run("line too long", func(t *testing.T) {
		br := bufio.NewReader(strings.NewReader("short\r\n" + strings.Repeat("x", 999) + "\r\n.\r\n"))
		d := newDataReader(br, false, 0, 1000)
		if _, err := io.ReadAll(d); !errors.Is(err, ErrLineTooLong) {
			t.Fatalf("err = %v", err)
		}
		if err := d.drain(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("line at limit", func(t *testing.T) {
		br := bufio.NewReader(strings.NewReader(strings.Repeat("x", 998) + "\r\n.\r\n"))
		d := newDataReader(br, false, 0, 1000)
		if _, err := io.ReadAll(d); err != nil {
			t.Fatalf("err = %v", err)
		}
	})
}

func FuzzDataReader(f *testing.F) {
	seeds := []string{
		".\r\n", "a\r\n.\r\n", "..a\r\n.\r\n", "a\n.\nb\r\n.\r\n", "a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n",
		"a\n.\r\n", "a\r.\r\n.\r\n", "a\r\n.\r", "\r\r\n.\r\n", ".\n.\r\n", "x\r", "\r", ".",
		strings.Repeat("line\r\n", 20) + "..\r\n.\r\nQUIT\r\n",
	}
	for i, s := range seeds {
		f.Add([]byte(s), []byte{byte(i), 3, 1}, uint8(i))
	}
	f.Fuzz(func(t *testing.T, in, sizes []byte, bufSize uint8) {
		if len(in) > 1<<16 {
			return
		}
		checkDataReader(t, in, sizes, 16+int(bufSize), bufSize%2 == 0, int(bufSize)%13+1)
	})
}

// benchMessage builds a message of about size octets of 76-character
// lines, some starting with a dot, dot-stuffed and terminated.
func benchMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.com\r\nTo: b@example.com\r\nSubject: bench\r\n\r\n")
	for i := 0; b.Len() < size; i++ {
		if i%50 == 0 {
			b.WriteString("..")
		}
		fmt.Fprintf(&b, "%06d %s\r\n", i, strings.Repeat("abcdefghij", 7)[:69])
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

func BenchmarkDataReader(b *testing.B) {
	for _, size := range []int{2 << 10, 1 << 20} {
		msg := benchMessage(size)
		for _, mode := range []string{"WriteTo", "Read32K"} {
			b.Run(fmt.Sprintf("%dKB/%s", size>>10, mode), func(b *testing.B) {
				src := bytes.NewReader(msg)
				br := bufio.NewReaderSize(src, readBufferSize)
				buf := make([]byte, 32<<10)
				b.SetBytes(int64(len(msg)))
				b.ReportAllocs()
				for b.Loop() {
					src.Reset(msg)
					br.Reset(src)
					d := newDataReader(br, false, 0, 0)
					var err error
					if mode == "WriteTo" {
						_, err = d.WriteTo(io.Discard)
					} else {
						_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{d}, buf)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
