package parse

import (
	"bytes"
	"encoding/base64"
	"math"
	"os"
	"strings"
	"testing"
)

// decodeBase64Leaf must give exactly what enmime gives: parse the corpus
// and base64 shapes with it always and never used, and compare.
func TestDecodeBase64LeafMatchesEnmime(t *testing.T) {
	t.Cleanup(func() { base64LeafMin = 64 << 10 })
	msgs := map[string][]byte{}
	for _, f := range corpus(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		msgs[f] = raw
	}
	payload := make([]byte, 200<<10+5)
	for i := range payload {
		payload[i] = byte(i*131 + i>>7)
	}
	wrap := func(s string, width int) string {
		var b strings.Builder
		for len(s) > width {
			b.WriteString(s[:width] + "\r\n")
			s = s[width:]
		}
		return b.String() + s + "\r\n"
	}
	part := func(ctype, body string) []byte {
		return []byte("From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n" +
			"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n" + ctype + "Content-Transfer-Encoding: BASE64 \r\n\r\n" + body + "--b--\r\n")
	}
	std := base64.StdEncoding.EncodeToString(payload)
	for name, m := range map[string][]byte{
		"clean":           part("Content-Type: application/pdf\r\n", wrap(std, 76)),
		"unwrapped":       part("Content-Type: application/octet-stream; name=x.bin\r\n", std+"\r\n"),
		"no padding 2":    part("Content-Type: image/png\r\n", wrap(base64.RawStdEncoding.EncodeToString(payload[:len(payload)-1]), 64)),
		"no padding 3":    part("Content-Type: image/png\r\n", wrap(base64.RawStdEncoding.EncodeToString(payload[:len(payload)-2]), 64)),
		"dangling 1":      part("Content-Type: image/png\r\n", wrap(std[:len(std)-4]+"Q", 76)),
		"padding inside":  part("Content-Type: image/png\r\n", wrap(std[:4000]+"=="+std[4000:], 76)),
		"bad bytes":       part("Content-Type: image/png\r\n", wrap(std[:4000]+"*!"+std[4000:], 76)),
		"many bad bytes":  part("Content-Type: image/png\r\n", wrap(strings.Repeat("*", 20)+std, 76)),
		"high bytes":      part("Content-Type: image/png\r\n", wrap(std[:4000]+"\xc1"+std[4000:], 76)),
		"text":            part("Content-Type: text/plain; charset=utf-8\r\nContent-Disposition: attachment\r\n", wrap(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("héllo wörld "), 20000)), 76)),
		"no content type": part("", wrap(std, 76)),
		"inline cid":      part("Content-Type: image/gif\r\nContent-ID: <a@b>\r\n", wrap(std, 76)),
		"single part":     []byte("Subject: s\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\n" + wrap(std, 76)),
		"trailing bits":   part("Content-Type: image/png\r\n", wrap(std[:len(std)-4]+"QR==", 76)),
	} {
		msgs[name] = m
	}
	for name, raw := range msgs {
		base64LeafMin = math.MaxInt
		want := parseMessage(raw, Options{}.withDefaults())
		base64LeafMin = 0
		got := parseMessage(raw, Options{}.withDefaults())
		// The event's base64 of each attachment, whether copied from the
		// message or encoded, is that of its content.
		for i, a := range got.Attachments {
			var b strings.Builder
			if err := a.WriteContentBase64(&b); err != nil || b.String() != base64.StdEncoding.EncodeToString(a.Content) {
				t.Errorf("%s: attachment %d: WriteContentBase64 differs from the encoding of its content (%v)", name, i, err)
			}
		}
		if !bytes.Equal(marshal(t, got), marshal(t, want)) {
			t.Errorf("%s: decodeBase64Leaf changes the result:\n got %s\nwant %s", name, marshal(t, got)[:min(2000, len(marshal(t, got)))], marshal(t, want)[:min(2000, len(marshal(t, want)))])
		}
	}
}

func TestReadAllSizeHint(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	for _, hint := range []int64{0, -1, 1, 9999, 10000, 10001, 1 << 20} {
		got, err := readAll(bytes.NewReader(data), hint)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("hint %d: %d bytes, %v", hint, len(got), err)
		}
	}
}
