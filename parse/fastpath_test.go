package parse

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/japanese"
)

// parseBoth parses raw with the builder's fast paths and with enmime
// alone and returns both events' JSON.
func parseBoth(t *testing.T, raw []byte, opts Options) (fast, slow []byte) {
	t.Helper()
	opts.MaxDuration = time.Hour // a budget spent on one side only would differ
	before := bugs.Load()
	var out [2][]byte
	for i, only := range []bool{false, true} {
		o := opts
		o.enmimeOnly = only
		d, err := Parse(bytes.NewReader(raw), o)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		d.Resolve()
		if out[i], err = json.Marshal(d); err != nil {
			t.Fatalf("marshal: %v", err)
		}
	}
	if bugs.Load() != before {
		t.Fatalf("recovered panic or broken invariant")
	}
	return out[0], out[1]
}

// FuzzParseFastPaths: the event is the same, warnings included, whether
// the parts are made by the builder's fast paths (decodeBase64Leaf,
// plainTextLeaf, containerPart) and the body by multipartBody, or all by
// enmime. Seeds: the corpus and FuzzParse's hostile shapes
// (testdata/fuzz/FuzzParse).
func FuzzParseFastPaths(f *testing.F) {
	addCorpus(f)
	for _, raw := range fuzzCorpus(f, "FuzzParse") {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fast, slow := parseBoth(t, raw, Options{MaxDepth: 8, MaxParts: 64, MaxAttachmentBytes: 1 << 10})
		if !bytes.Equal(fast, slow) {
			t.Fatalf("fast paths differ from enmime on %q:\nfast   %s\nenmime %s", raw, fast, slow)
		}
	})
}

// fuzzCorpus returns the inputs of the committed corpus of the fuzz target
// name (testdata/fuzz/<name>), each a file of go test's format holding
// one []byte.
func fuzzCorpus(t testing.TB, name string) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", name, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus for %s (%v)", name, err)
	}
	var out [][]byte
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		head, lit, ok := strings.Cut(strings.TrimSpace(string(b)), "\n")
		if !ok || head != "go test fuzz v1" || !strings.HasPrefix(lit, "[]byte(") || !strings.HasSuffix(lit, ")") {
			t.Fatalf("%s: not one []byte in go test fuzz v1 format", path)
		}
		v, err := strconv.Unquote(lit[len("[]byte(") : len(lit)-1])
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, []byte(v))
	}
	return out
}

// A text body too large for charset detection comes out of the fast paths
// as enmime makes it: 8-bit charsets converted as declared, from any
// transfer encoding, as the message or as a part of one.
func TestLargeTextLikeEnmime(t *testing.T) {
	line := "Caf\xe9 cr\xe8me br\xfbl\xe9e, na\xefve fa\xe7ade \x80 \x9f \xff = end\r\n"
	latin := []byte(strings.Repeat(line, maxDetectBody/len(line)+2))
	utf := []byte(strings.Repeat("Café crème brûlée, naïve façade € = end\r\n", maxDetectBody/40+2))
	sjis, _ := japanese.ShiftJIS.NewEncoder().Bytes([]byte(strings.Repeat("日本語のテキスト = end\r\n", maxDetectBody/20+2)))
	qp := func(b []byte) []byte {
		var out bytes.Buffer
		w := quotedprintable.NewWriter(&out)
		w.Write(b)
		w.Close()
		return out.Bytes()
	}
	b64 := func(b []byte) []byte {
		var out bytes.Buffer
		enc := base64.StdEncoding.EncodeToString(b)
		for len(enc) > 76 {
			out.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		out.WriteString(enc + "\r\n")
		return out.Bytes()
	}
	for _, tc := range []struct {
		name, charset, cte string
		body               []byte
		want               string // in the text or HTML
	}{
		{"latin1 8bit", "iso-8859-1", "8bit", latin, "Café crème"},
		{"latin1 qp", "ISO-8859-1", "quoted-printable", qp(latin), "Café crème"},
		{"windows-1252 base64", "windows-1252", "base64", b64(latin), "Café crème"},
		{"koi8-r qp", "koi8-r", "quoted-printable", qp(latin), "CafИ crХme"},
		{"utf-8 base64", "utf-8", "base64", b64(utf), "Café crème"},
		{"utf-8 qp", "utf-8", "quoted-printable", qp(utf), "Café crème"},
		{"shift_jis 8bit", "shift_jis", "8bit", sjis, "日本語のテキスト"},
		{"shift_jis base64", "Shift_JIS", "base64", b64(sjis), "日本語のテキスト"},
		{"latin1 html", "iso-8859-1", "8bit", slices.Concat([]byte(`<html><head><meta charset="koi8-r"></head><body><p>`), latin), "Café crème"},
	} {
		header := "From: a@example.com\r\nSubject: large\r\nMIME-Version: 1.0\r\n"
		ctype := "text/plain"
		if strings.HasSuffix(tc.name, "html") {
			ctype = "text/html"
		}
		part := "Content-Type: " + ctype + "; charset=" + tc.charset + "\r\nContent-Transfer-Encoding: " + tc.cte + "\r\n\r\n"
		for shape, raw := range map[string][]byte{
			"message": slices.Concat([]byte(header+part), tc.body),
			"part": slices.Concat([]byte(header+"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"+part), tc.body,
				[]byte("\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\n\r\n%PDF\r\n--b--\r\n")),
		} {
			fast, slow := parseBoth(t, raw, Options{})
			if !bytes.Equal(fast, slow) {
				t.Errorf("%s as the %s: the fast paths differ from enmime (%d and %d bytes of JSON)", tc.name, shape, len(fast), len(slow))
			}
			if !bytes.Contains(fast, []byte(tc.want)) {
				t.Errorf("%s as the %s: text not converted: %.300s", tc.name, shape, fast)
			}
			// Not UTF-8, the body of a single-part message is converted
			// only as the event is written.
			d, err := Parse(bytes.NewReader(raw), Options{})
			if err != nil {
				t.Fatal(err)
			}
			deferred := d.TextBody != nil || d.HTMLBody != nil
			if want := shape == "message" && tc.charset != "utf-8"; deferred != want || deferred && d.Text+d.HTML != "" {
				t.Errorf("%s as the %s: deferred %v, want %v (text %d bytes, HTML %d)", tc.name, shape, deferred, want, len(d.Text), len(d.HTML))
			}
		}
	}
}
