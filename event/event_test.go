package event

import (
	"encoding/base64"
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
		var b strings.Builder
		if err := a.WriteContentBase64(&b); err != nil || b.String() != std {
			t.Errorf("%s: wrote %q, %v; want %q", name, b.String(), err, std)
		}
	}
}
