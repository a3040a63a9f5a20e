package parse

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"

	"github.com/mailhook/mailhook/event"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current output")

func TestMain(m *testing.M) {
	code := m.Run()
	if n := bugs.Load(); n != 0 && code == 0 {
		fmt.Fprintf(os.Stderr, "parse: %d recovered panic(s) or broken invariant(s) during the tests\n", n)
		code = 1
	}
	os.Exit(code)
}

// corpus returns the testdata/*.eml files, sorted.
func corpus(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("corpus has %d messages, want at least 10", len(files))
	}
	return files
}

// addCorpus adds every corpus message to f's seeds.
func addCorpus(f *testing.F) {
	f.Helper()
	for _, path := range corpus(f) {
		raw, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
}

// parseFile parses one corpus message with default options.
func parseFile(t *testing.T, path string) *event.Data {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(bytes.NewReader(raw), Options{})
	if err != nil {
		t.Fatalf("Parse(%s): %v", path, err)
	}
	return d
}

// marshal is the golden file encoding: the JSON of the returned Data.
func marshal(t testing.TB, d *event.Data) []byte {
	t.Helper()
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return append(b, '\n')
}

// TestGolden compares Parse's output on every corpus message with its
// golden JSON; go test ./parse -update rewrites them.
func TestGolden(t *testing.T) {
	for _, path := range corpus(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".eml")
		t.Run(name, func(t *testing.T) {
			d := parseFile(t, path)
			checkInvariants(t, d)
			got := marshal(t, d)
			golden := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./parse -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (run go test ./parse -update and review the diff):\n%s", golden, got)
			}
		})
	}
}

// checkInvariants asserts what every Parse result promises.
func checkInvariants(t testing.TB, d *event.Data) {
	t.Helper()
	if d == nil {
		t.Fatal("nil Data")
	}
	if d.From == nil || d.To == nil || d.Cc == nil || d.ReplyTo == nil || d.References == nil ||
		d.Headers == nil || d.Attachments == nil || d.Warnings == nil {
		t.Errorf("nil slice in %+v", d)
	}
	strs := []string{d.MessageID, d.Subject, d.Date, d.InReplyTo, d.Text, d.HTML}
	strs = append(strs, d.References...)
	strs = append(strs, d.Warnings...)
	for _, h := range d.Headers {
		strs = append(strs, h.Name, h.Value)
	}
	for _, as := range [][]event.Address{d.From, d.To, d.Cc, d.ReplyTo} {
		for _, a := range as {
			strs = append(strs, a.Name, a.Address)
		}
	}
	for _, a := range d.Attachments {
		strs = append(strs, a.Filename, a.ContentType, a.ContentID)
		if strings.ContainsAny(a.Filename, `/\`) || a.Filename == "." || a.Filename == ".." {
			t.Errorf("attachment filename %q is a path", a.Filename)
		}
		if a.Disposition != "inline" && a.Disposition != "attachment" {
			t.Errorf("attachment disposition %q", a.Disposition)
		}
		if a.ContentType == "" {
			t.Errorf("attachment %q without content type", a.Filename)
		}
		if a.Content != nil {
			sum := sha256.Sum256(a.Content)
			if hex.EncodeToString(sum[:]) != a.SHA256 || int64(len(a.Content)) != a.Size {
				t.Errorf("attachment %q: size/sha256 do not match content", a.Filename)
			}
		}
	}
	for _, s := range strs {
		if !utf8.ValidString(s) {
			t.Errorf("invalid UTF-8: %q", s)
		}
	}
	if len(d.Warnings) > maxWarnings+1 {
		t.Errorf("%d warnings, want at most %d", len(d.Warnings), maxWarnings+1)
	}
	if _, err := json.Marshal(d); err != nil {
		t.Errorf("marshal: %v", err)
	}
}

func TestParseReadError(t *testing.T) {
	boom := errors.New("boom")
	r := iotest.TimeoutReader(strings.NewReader("Subject: x\r\n\r\nbody"))
	if _, err := Parse(r, Options{}); err == nil {
		t.Error("Parse with a failing reader: no error")
	}
	_, err := Parse(iotest.ErrReader(boom), Options{})
	if !errors.Is(err, boom) {
		t.Errorf("Parse(ErrReader) = %v, want it to wrap %v", err, boom)
	}
}

func TestSplitHeader(t *testing.T) {
	tests := []struct {
		name      string
		raw       string
		want      []field
		bodyStart int
		warnings  int
	}{
		{"crlf", "A: 1\r\nB: 2\r\n\r\nbody", []field{{"A", " 1"}, {"B", " 2"}}, 14, 0},
		{"lf", "A: 1\nB: 2\n\nbody", []field{{"A", " 1"}, {"B", " 2"}}, 11, 0},
		{"folded", "Subject: a\r\n b\r\n\tc\r\n\r\n", []field{{"Subject", " a b\tc"}}, 22, 0},
		{"no body", "A: 1\r\nB: 2", []field{{"A", " 1"}, {"B", " 2"}}, 10, 0},
		{"empty header", "\r\nbody", nil, 2, 0},
		{"space before colon", "Subject : x\r\n\r\n", []field{{"Subject", " x"}}, 15, 0},
		{"name as written", "message-ID: <a@b>\r\n\r\n", []field{{"message-ID", " <a@b>"}}, 21, 0},
		{"leading continuation", " x\r\nA: 1\r\n\r\n", []field{{"A", " 1"}}, 12, 1},
		{"no colon before a field", "A: 1\r\noops\r\nB: 2\r\n\r\n", []field{{"A", " 1 oops"}, {"B", " 2"}}, 20, 1},
		// After the last field, a line that is not one starts the body.
		{"no colon after the fields", "A: 1\r\noops\r\n\r\nmore", []field{{"A", " 1"}}, 6, 1},
		{"no empty line", "Subject: hi\r\n folded\r\nHello there\r\nbye\r\n", []field{{"Subject", " hi folded"}}, 22, 1},
		{"no header", "hello\r\nworld\r\n\r\nmore", nil, 0, 1},
		{"no header, indented", " hello\r\nworld\r\n", nil, 0, 1},
		{"spaced name after the fields", "A: 1\r\nNote to self: x\r\n", []field{{"A", " 1"}}, 6, 1},
		{"spaced name before a field", "Note to self: x\r\nA: 1\r\n", []field{{"Note to self", " x"}, {"A", " 1"}}, 23, 0},
		{"mbox From_ line", "From a@b.c Mon Jan  1 00:00:00 2024\r\nhello\r\n", nil, 37, 2},
		// A fold that lost its indent still continues its field.
		{"parameter after the fields", "Content-Type: application/pdf\r\nname=\"a.pdf\"\r\n\r\nx", []field{{"Content-Type", " application/pdf name=\"a.pdf\""}}, 47, 1},
		{"after a semicolon", "Content-Type: text/plain;\r\nformat flowed\r\n\r\n", []field{{"Content-Type", " text/plain; format flowed"}}, 44, 1},
		{"after a comma", "To: a@b.c,\r\nd@e.f\r\n\r\n", []field{{"To", " a@b.c, d@e.f"}}, 21, 1},
		{"From field, space before colon", "From : a@b.c\r\n\r\n", []field{{"From", " a@b.c"}}, 16, 0},
		{"mbox From_ line before the fields", "From a@b.c Mon Jan  1 00:00:00 2024\r\nA: 1\r\n\r\nbody", []field{{"A", " 1"}}, 45, 1},
		{"empty name", ": x\r\nA: 1\r\n\r\n", []field{{"A", " 1"}}, 13, 1},
		{"invalid name", "Bad\x01Name: x\r\nA: 1\r\n\r\n", []field{{"A", " 1"}}, 21, 1},
		{"empty input", "", nil, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &warnings{}
			hb := splitHeader([]byte(tt.raw), w, "")
			if fmt.Sprint(hb.fields) != fmt.Sprint(tt.want) {
				t.Errorf("fields = %q, want %q", hb.fields, tt.want)
			}
			if hb.bodyStart != tt.bodyStart {
				t.Errorf("bodyStart = %d, want %d", hb.bodyStart, tt.bodyStart)
			}
			if len(w.items) != tt.warnings {
				t.Errorf("warnings = %q, want %d", w.items, tt.warnings)
			}
		})
	}
}

func TestMsgIDs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", []string{}},
		{"<a@b>", []string{"a@b"}},
		{" <a@b> (comment) <c@d>\t<e@f>", []string{"a@b", "c@d", "e@f"}},
		{"bare@id other@id", []string{"bare@id", "other@id"}},
		{"<>", []string{}},
		{"<unterminated@x", []string{"unterminated@x"}},
		{"phrase <a@b> junk", []string{"a@b"}},
	}
	for _, tt := range tests {
		if got := msgIDs(tt.in); fmt.Sprint(got) != fmt.Sprint(tt.want) || got == nil {
			t.Errorf("msgIDs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFilename(t *testing.T) {
	tests := []struct {
		in, want string
		warn     bool
	}{
		{"report.pdf", "report.pdf", false},
		{"Rechnung März.pdf", "Rechnung März.pdf", false},
		{"../../etc/passwd", "passwd", true},
		{`C:\Users\bob\budget.xlsx`, "budget.xlsx", true},
		{"..", "", true},
		{"dir/", "", true},
		{"  spaced  name .txt", "  spaced  name .txt", false},
		{"", "", false},
	}
	for _, tt := range tests {
		w := &warnings{}
		if got := filename(tt.in, "part 1", w); got != tt.want || (len(w.items) > 0) != tt.warn {
			t.Errorf("filename(%q) = %q with warnings %q, want %q (warn %v)", tt.in, got, w.items, tt.want, tt.warn)
		}
	}
}

func TestDecodeHeaderValues(t *testing.T) {
	tests := []struct {
		name, header, want string
		warn               bool
	}{
		{"plain", "Subject: hello", "hello", false},
		{"q latin1", "Subject: =?ISO-8859-1?Q?caf=E9?=", "café", false},
		{"adjacent words joined", "Subject: =?UTF-8?Q?a?= =?UTF-8?Q?b?=", "ab", false},
		{"text between words kept", "Subject: =?UTF-8?Q?a?= x =?UTF-8?Q?b?=", "a x b", false},
		{"utf-8 split across words", "Subject: =?utf-8?b?8J+O?= =?utf-8?b?iQ==?=", "🎉", false},
		{"koi8-r", "Subject: =?koi8-r?B?8NLJ18XU?=", "Привет", false},
		{"language suffix", "Subject: =?utf-8*de?Q?Gr=C3=BC=C3=9Fe?=", "Grüße", false},
		{"unknown charset", "Subject: =?x-nope?Q?abc?=", "abc", true},
		{"malformed word kept", "Subject: =?utf-8?Q?abc", "=?utf-8?Q?abc", false},
		{"raw latin1", "Subject: caf\xe9", "café", true},
		{"raw utf-8", "Subject: café", "café", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &warnings{}
			hr := newHeaderReader(splitHeader([]byte(tt.header+"\r\n\r\n"), w, ""), newWordDecoder(), w)
			if got := hr.first("Subject"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if (len(w.items) > 0) != tt.warn {
				t.Errorf("warnings %q, want some: %v", w.items, tt.warn)
			}
		})
	}
}

func TestAddresses(t *testing.T) {
	tests := []struct {
		name, value string
		want        []event.Address
		warn        bool
	}{
		{"empty", "", []event.Address{}, false},
		{"plain", "a@example.com", []event.Address{addr("", "a@example.com")}, false},
		{"list", `Bob <b@x>, "Doe, J." <j@x>`, []event.Address{addr("Bob", "b@x"), addr("Doe, J.", "j@x")}, false},
		{"encoded", "=?UTF-8?Q?Zo=C3=AB?= <z@x>", []event.Address{addr("Zoë", "z@x")}, false},
		{"encoded in quotes", `"=?UTF-8?Q?Zo=C3=AB?=" <z@x>`, []event.Address{addr("Zoë", "z@x")}, false},
		{"group", "Team: a@x, b@x;", []event.Address{addr("", "a@x"), addr("", "b@x")}, false},
		{"undisclosed", "undisclosed-recipients:;", []event.Address{}, false},
		{"missing comma", "a@x b@x", []event.Address{addr("", "a@x"), addr("", "b@x")}, true},
		{"garbage", "<<<a@x>>> ,,, (((", []event.Address{addr("", "a@x")}, true},
		// One address net/mail refuses costs the others nothing, and is
		// read as mail clients read it.
		{"carrier's dotted local part", `"Joe Q. Public" <joe@example.com>, Taro <taro..yamada.@docomo.ne.jp>`,
			[]event.Address{addr("Joe Q. Public", "joe@example.com"), addr("Taro", "taro..yamada.@docomo.ne.jp")}, true},
		{"source route", "Mary Smith <@node.test:mary@example.net>, Ann <ann@example.com>",
			[]event.Address{addr("Mary Smith", "mary@example.net"), addr("Ann", "ann@example.com")}, true},
		{"spaces around @", "Ann <ann @ example.com>, Bob <bob@example.com>",
			[]event.Address{addr("Ann", "ann@example.com"), addr("Bob", "bob@example.com")}, true},
		{"comments everywhere (RFC 5322 A.5)", `Pete(A nice \) chap) <pete(his account)@silly.test(his host)>`,
			[]event.Address{addr("Pete", "pete@silly.test")}, true},
		{"address as display name", "ann@example.com <ann@example.com>, Bob <bob@example.com>",
			[]event.Address{addr("ann@example.com", "ann@example.com"), addr("Bob", "bob@example.com")}, true},
		{"group with a bad member", "Team: Ann <ann @ example.com>, Bob <b@x>;, c@x",
			[]event.Address{addr("Ann", "ann@example.com"), addr("Bob", "b@x"), addr("", "c@x")}, true},
		{"names with missing commas", "Bob <b@x> Carol <c@x>", []event.Address{addr("Bob", "b@x"), addr("Carol", "c@x")}, true},
		{"unreadable, kept as written", "a@x, bad@@example.com",
			[]event.Address{addr("", "a@x"), addr("", "bad@@example.com")}, true},
		{"encoded name beside a bad one", "=?UTF-8?Q?Zo=C3=AB?= <z@x>, Bad <b @ x>",
			[]event.Address{addr("Zoë", "z@x"), addr("Bad", "b@x")}, true},
		// Obsolete syntax allows space around dots and "@" only: words
		// after an address are not part of it (a header line that lost
		// its field name, taken as a continuation).
		{"words after the address", "b@example.com this line has no colon",
			[]event.Address{addr("", "b@example.com")}, true},
		{"words inside the brackets", "Bob <bob@example.com extra>, c@x",
			[]event.Address{addr("", "bob@example.com"), addr("", "c@x")}, true},
		{"quoted name before a bare address", `"Bob" b@example.com`,
			[]event.Address{addr("Bob", "b@example.com")}, true},
		// Quoted strings are read by RFC 5322's rules, not Go's: a
		// backslash quotes the next character, whatever it is.
		{"backslash escapes in a quoted name", `"Evil\r\nBcc: v@x.example" a@b.example`,
			[]event.Address{addr("EvilrnBcc: v@x.example", "a@b.example")}, true},
		{"spaces around dots", "john . doe @ example . com",
			[]event.Address{addr("", "john.doe@example.com")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &warnings{}
			hr := newHeaderReader(splitHeader([]byte("To: "+tt.value+"\r\n\r\n"), w, ""), newWordDecoder(), w)
			got := hr.addresses("To")
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || got == nil {
				t.Errorf("addresses(%q) = %q, want %q", tt.value, got, tt.want)
			}
			if (len(w.items) > 0) != tt.warn {
				t.Errorf("warnings %q, want some: %v", w.items, tt.warn)
			}
		})
	}
}

func TestDuplicateHeaders(t *testing.T) {
	raw := "From: a@x\r\nFrom: b@x\r\nSubject: one\r\nSubject: two\r\n\r\nbody\r\n"
	d, err := Parse(strings.NewReader(raw), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Subject != "one" || len(d.From) != 2 {
		t.Errorf("Subject %q, From %v: want the first subject and both senders", d.Subject, d.From)
	}
	if len(d.Warnings) != 2 {
		t.Errorf("warnings = %q, want one per duplicated field", d.Warnings)
	}
}

// TestSplit checks the located MIME structure on small hand-made bodies.
func TestSplit(t *testing.T) {
	const hdr = "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	tests := []struct {
		name     string
		raw      string
		parts    int
		depth    int
		leaves   []string // content of each leaf, document order
		warnings int
	}{
		{"single part", "Subject: x\r\n\r\nhello\r\n", 0, 0, nil, 0},
		{"two parts", hdr + "pre\r\n--b\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\nepi\r\n", 2, 1, []string{"one", "two"}, 0},
		{"lf only", strings.ReplaceAll(hdr+"--b\n\none\n--b--\n", "\r\n", "\n"), 1, 1, []string{"one"}, 0},
		{"padding after delimiter", hdr + "--b \t\r\n\r\none\r\n--b-- \r\n", 1, 1, []string{"one"}, 0},
		{"longer boundary is not ours", hdr + "--b\r\n\r\none\r\n--bb\r\n--b--\r\n", 1, 1, []string{"one\r\n--bb"}, 0},
		{"unclosed", hdr + "--b\r\n\r\none\r\n", 1, 1, []string{"one\r\n"}, 1},
		{"no delimiter", hdr + "just text\r\n", 0, 1, nil, 0},
		{"empty part", hdr + "--b\r\n--b\r\n\r\nx\r\n--b--\r\n", 2, 1, []string{"", "x"}, 0},
		{"header cut by end of message", hdr + "--b\r\nX-A: 1", 1, 1, []string{""}, 1},
		{"no header, no empty line", hdr + "--b\r\nX", 1, 1, []string{"X"}, 2},
		{
			"part headers without the empty line",
			hdr + "--b\r\nContent-Type: text/plain\r\nbar\r\n\r\n--b\r\nContent-Type: text/html\r\n<p>baz</p>\r\n--b--\r\n",
			2, 1, []string{"bar\r\n", "<p>baz</p>"}, 2,
		},
		{
			"nested, inner unclosed",
			hdr + "--b\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n\r\ninner\r\n--b\r\n\r\nouter\r\n--b--\r\n",
			3, 2, []string{"inner", "outer"}, 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(tt.raw)
			w := &warnings{}
			hb := splitHeader(raw, w, "")
			tr := split(raw, hb, DefaultMaxDepth, DefaultMaxParts, w)
			if tr.parts != tt.parts || tr.depth != tt.depth {
				t.Errorf("parts, depth = %d, %d; want %d, %d", tr.parts, tr.depth, tt.parts, tt.depth)
			}
			var leaves []string
			var visit func(n *node)
			visit = func(n *node) {
				if n.boundary == "" && n != tr.root {
					leaves = append(leaves, string(raw[n.bodyStart:n.end]))
				}
				for _, c := range n.children {
					visit(c)
				}
			}
			visit(tr.root)
			if fmt.Sprintf("%q", leaves) != fmt.Sprintf("%q", tt.leaves) {
				t.Errorf("leaves = %q, want %q", leaves, tt.leaves)
			}
			if len(w.items) != tt.warnings {
				t.Errorf("warnings = %q, want %d", w.items, tt.warnings)
			}
		})
	}
}

func TestMaxAttachmentBytes(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "attachments.eml"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(bytes.NewReader(raw), Options{MaxAttachmentBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, d)
	var omitted int
	for _, a := range d.Attachments {
		if a.Size > 200 {
			omitted++
			if a.Content != nil || a.SHA256 == "" {
				t.Errorf("attachment %q (%d bytes): content kept or sha256 missing", a.Filename, a.Size)
			}
		} else if a.Content == nil {
			t.Errorf("attachment %q (%d bytes) lost its content", a.Filename, a.Size)
		}
	}
	if omitted == 0 || countContaining(d.Warnings, "larger than 200") != omitted {
		t.Errorf("%d attachments omitted, warnings %q", omitted, d.Warnings)
	}
}

func addr(name, address string) event.Address {
	return event.Address{Name: name, Address: address}
}

func countContaining(list []string, sub string) int {
	n := 0
	for _, s := range list {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

// deepMessage nests depth multipart/mixed levels with a text part at the
// bottom, every boundary distinct, like the 410 KB message of the brief.
func deepMessage(depth int) []byte {
	var b bytes.Buffer
	b.WriteString("From: deep@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n")
	for i := 1; i < depth; i++ {
		fmt.Fprintf(&b, "--b%d\r\nContent-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n", i-1, i)
	}
	fmt.Fprintf(&b, "--b%d\r\nContent-Type: text/plain\r\n\r\nbottom\r\n", depth-1)
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return b.Bytes()
}

// manyPartsMessage is a multipart/mixed with a text part and n-1 small
// attachments.
func manyPartsMessage(n int) []byte {
	var b bytes.Buffer
	b.WriteString("From: many@example.com\r\nSubject: many\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n")
	b.WriteString("--b\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"f%d.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n", i)
	}
	b.WriteString("--b--\r\n")
	return b.Bytes()
}

// TestBoundedWork: structures past the limits come back quickly with a
// warning and what lies within the limits. It asserts behaviour, not time;
// BenchmarkParse/deep5000 and /parts10000 give the figures.
func TestBoundedWork(t *testing.T) {
	tests := []struct {
		name        string
		raw         []byte
		opts        Options
		warning     string
		attachments int
		text        string
	}{
		{"deep 5000", deepMessage(5000), Options{}, "nested deeper than 50 multipart levels", 0, ""},
		{"deep 40 within limit", deepMessage(40), Options{}, "", 0, "bottom"},
		{"deep 40, MaxDepth 10", deepMessage(40), Options{MaxDepth: 10}, "nested deeper than 10 multipart levels", 0, ""},
		{"10000 parts", manyPartsMessage(10000), Options{}, "more than 1000 parts", 999, "first part"},
		{"10000 parts, MaxParts 20", manyPartsMessage(10000), Options{MaxParts: 20}, "more than 20 parts", 19, "first part"},
		{"500 parts within limit", manyPartsMessage(500), Options{}, "", 499, "first part"},
		{"500 parts, time budget spent", manyPartsMessage(500), Options{MaxDuration: time.Nanosecond}, "parse time budget spent", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse(bytes.NewReader(tt.raw), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, d)
			if d.Subject == "" || len(d.From) != 1 {
				t.Errorf("headers lost: subject %q, from %v", d.Subject, d.From)
			}
			if tt.warning == "" && len(d.Warnings) != 0 {
				t.Errorf("warnings = %q, want none", d.Warnings)
			}
			if tt.warning != "" && countContaining(d.Warnings, tt.warning) != 1 {
				t.Errorf("warnings = %q, want one containing %q", d.Warnings, tt.warning)
			}
			if len(d.Attachments) != tt.attachments {
				t.Errorf("%d attachments, want %d", len(d.Attachments), tt.attachments)
			}
			if strings.TrimSpace(d.Text) != tt.text {
				t.Errorf("text = %q, want %q", d.Text, tt.text)
			}
		})
	}
}

// parseWarned parses raw with default options, checks the invariants and
// that exactly one warning contains warning.
func parseWarned(t *testing.T, raw, warning string) *event.Data {
	t.Helper()
	d, err := Parse(strings.NewReader(raw), Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, d)
	if countContaining(d.Warnings, warning) != 1 {
		t.Errorf("warnings = %q, want one containing %q", d.Warnings, warning)
	}
	return d
}

// TestHeaderWithoutEmptyLine: mail as scripts send it, after the
// Received field mailhook puts first: text with no header at all, a
// header with no empty line after it, and an mbox "From " line first.
func TestHeaderWithoutEmptyLine(t *testing.T) {
	const received = "Received: from [127.0.0.1] (unknown [127.0.0.1])\r\n\tby mx (mailhook) with ESMTP id 01M983HD6TZVY9FTNXWMXPR9P7;\r\n\tMon, 07 Dec 2026 11:17:03 +0000\r\n"
	tests := []struct {
		name, raw, warning        string
		subject, from, text, html string
		headers                   int
	}{
		{"no header", received + "Hello world\r\nsecond line\r\n", "no empty line before the body", "", "", "Hello world\r\nsecond line", "", 1},
		{"no empty line", received + "Subject: hi\r\nHello there, Bob\r\n", "no empty line before the body", "hi", "", "Hello there, Bob", "", 2},
		// A body line that looks like a parameter is a parameter only
		// after Content-Type or Content-Disposition, and only when it
		// starts with a letter (not a delimiter).
		{"name=value after Subject", received + "Subject: alert\r\nstatus=CRITICAL host=db1\r\nload is high\r\n",
			"no empty line before the body", "alert", "", "status=CRITICAL host=db1\r\nload is high", "", 2},
		{"quoted-printable after its encoding", received + "Subject: qp\r\nContent-Transfer-Encoding: quoted-printable\r\ncaf=C3=A9\r\n",
			"no empty line before the body", "qp", "", "café", "", 3},
		{
			"delimiter after Content-Type", received + "Subject: t\r\nContent-Type: multipart/mixed; boundary=\"----=_Part_1\"\r\n" +
				"------=_Part_1\r\nContent-Type: text/plain\r\n\r\nhello world\r\n------=_Part_1--\r\n",
			"no empty line before the body", "t", "", "hello world", "", 3,
		},
		{
			"mbox From line", received + "From bob@example.com  Thu Aug 22 12:36:23 2002\r\nFrom: Bob <bob@example.com>\r\nSubject: hi\r\n\r\nbody\r\n",
			`an mbox "From " separator`, "hi", "bob@example.com", "body", "", 3,
		},
		{
			"parts", received + "Subject: parts\r\nContent-Type: multipart/alternative; boundary=foo\r\n\r\n" +
				"--foo\r\nContent-Type: text/plain\r\nbar\r\n\r\n--foo\r\nContent-Type: text/html\r\n<p>baz</p>\r\n--foo--\r\n",
			"part 2: no empty line before the body", "parts", "", "bar", "<p>baz</p>", 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := parseWarned(t, tt.raw, tt.warning)
			if strings.TrimSpace(d.Text) != tt.text || d.HTML != tt.html || d.Subject != tt.subject || len(d.Headers) != tt.headers {
				t.Errorf("text %q, html %q, subject %q, %d headers %q; want %q, %q, %q, %d",
					d.Text, d.HTML, d.Subject, len(d.Headers), d.Headers, tt.text, tt.html, tt.subject, tt.headers)
			}
			from := ""
			if len(d.From) > 0 {
				from = d.From[0].Address
			}
			if from != tt.from {
				t.Errorf("from = %q, want %q", from, tt.from)
			}
			if d.Headers[0].Name != "Received" || strings.Contains(d.Headers[0].Value, "Hello") || strings.Contains(d.Headers[0].Value, "2002") {
				t.Errorf("Received field took in a line of the message: %q", d.Headers[0].Value)
			}
		})
	}
}

// TestWorkCaps: the internal bounds on header and decoding work hold and
// say so in a warning.
func TestWorkCaps(t *testing.T) {
	big := func(s string, n int) string { return strings.Repeat(s, n) }
	tests := []struct {
		name    string
		raw     string
		warning string
		check   func(t *testing.T, d *event.Data)
	}{
		{
			"header fields",
			big("X-Spam: 1\r\n", maxHeaderFields+5) + "Subject: late\r\n\r\nbody\r\n",
			"only the first 10000 are listed",
			func(t *testing.T, d *event.Data) {
				if len(d.Headers) != maxHeaderFields || d.Subject != "" {
					t.Errorf("%d headers, subject %q", len(d.Headers), d.Subject)
				}
			},
		},
		{
			"address budget",
			"To: " + big("someone@example.com, ", addressBudget/21+1) + "\r\nCc: a@example.com\r\n\r\nbody\r\n",
			"address list not parsed",
			func(t *testing.T, d *event.Data) {
				if len(d.To) != 0 || len(d.Cc) != 1 {
					t.Errorf("to %d, cc %d: want the over-budget To skipped, Cc parsed", len(d.To), len(d.Cc))
				}
			},
		},
		{
			"html to text",
			"Content-Type: text/html\r\n\r\n" + big("<p>x</p>", maxHTMLToText/8+1),
			"no text derived from HTML",
			func(t *testing.T, d *event.Data) {
				if d.Text != "" || d.HTML == "" {
					t.Errorf("text %d bytes, html %d bytes", len(d.Text), len(d.HTML))
				}
			},
		},
		{
			"oversized Content-Type",
			"Content-Type: text/plain; " + big("a=b; ", maxMIMEFieldBytes/5+1) + "\r\n\r\nbody\r\n",
			"Content-Type header ignored",
			func(t *testing.T, d *event.Data) {
				if d.Text != "body\r\n" {
					t.Errorf("text %q", d.Text)
				}
			},
		},
		{
			"MIME header budget",
			"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
				big("--b\r\nContent-Type: text/plain; x=\""+big("y", maxMIMEFieldBytes-100)+"\"\r\n\r\npart\r\n", mimeHeaderBudget/maxMIMEFieldBytes+10) + "--b--\r\n",
			"MIME part headers over",
			func(t *testing.T, d *event.Data) {
				if n := strings.Count(d.Text, "part"); n == 0 || n > mimeHeaderBudget/maxMIMEFieldBytes+1 {
					t.Errorf("%d parts parsed", n)
				}
			},
		},
		{
			"base64 garbage",
			"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + big("QUJD!#\r\n", 5000),
			"10000 bytes outside the base64 alphabet ignored",
			func(t *testing.T, d *event.Data) {
				if len(d.Attachments) != 1 || string(d.Attachments[0].Content) != big("ABC", 5000) {
					t.Errorf("attachments %+v", d.Attachments)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := parseWarned(t, tt.raw, tt.warning)
			tt.check(t, d)
		})
	}
}

// FuzzParse: no panic, no broken invariant, the output marshals, and two
// parses give the same event, on anything. Seeds: the corpus and
// testdata/fuzz/FuzzParse (hostile shapes).
func FuzzParse(f *testing.F) {
	addCorpus(f)
	// No time budget: one spent on one parse only would tell them apart.
	opts := Options{MaxDepth: 8, MaxParts: 64, MaxAttachmentBytes: 1 << 10, MaxDuration: time.Hour}
	f.Fuzz(func(t *testing.T, raw []byte) {
		before := bugs.Load()
		d, err := Parse(bytes.NewReader(raw), opts)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		checkInvariants(t, d)
		if bugs.Load() != before {
			t.Fatalf("recovered panic or broken invariant: warnings %q", d.Warnings)
		}
		// One message, one event: every attempt renders it again.
		again, err := Parse(bytes.NewReader(raw), opts)
		if err != nil {
			t.Fatalf("Parse again: %v", err)
		}
		j1, _ := json.Marshal(d)
		j2, _ := json.Marshal(again)
		if !bytes.Equal(j1, j2) {
			t.Fatalf("two parses differ:\n%s\n%s", j1, j2)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	pdf := make([]byte, 750<<10) // ~1 MB once base64-encoded
	for i := range pdf {
		pdf[i] = byte(i * 7)
	}
	var big bytes.Buffer
	big.WriteString("From: a@example.com\r\nTo: b@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n")
	big.WriteString("--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n")
	big.WriteString("--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"big.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	big.WriteString(wrap76(pdf))
	big.WriteString("--b--\r\n")

	small, err := os.ReadFile(filepath.Join("testdata", "alternative.eml"))
	if err != nil {
		b.Fatal(err)
	}
	for _, bm := range []struct {
		name string
		raw  []byte
	}{
		{"multipart2KB", padTo(small, 2<<10)},
		{"attachment1MB", big.Bytes()},
		{"deep5000", deepMessage(5000)},
		{"parts10000", manyPartsMessage(10000)},
		{"htmlNewsletter100KB", htmlNewsletter(350)},
		{"latin1QP8MB", latin1QP(8 << 20)},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.raw)))
			for b.Loop() {
				if _, err := Parse(bytes.NewReader(bm.raw), Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// latin1QP is a single-part ISO-8859-1 text message in quoted-printable,
// about size bytes long: past charset detection's limit when large.
func latin1QP(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.com\r\nSubject: large\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	for b.Len() < size {
		b.WriteString("Caf=E9 cr=E8me br=FBl=E9e, na=EFve fa=E7ade: lorem ipsum dolor sit amet, consectetur=\r\n adipiscing elit\r\n")
	}
	return b.Bytes()
}

// htmlNewsletter is an HTML-only message of n table rows (about 300 bytes
// each), with no charset named anywhere, as bulk mail often is.
func htmlNewsletter(n int) []byte {
	var b bytes.Buffer
	b.WriteString("From: news@example.com\r\nTo: b@example.com\r\nSubject: news\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n")
	b.WriteString("<html><head><style>td{color:#333}</style></head><body><table width=\"600\">\r\n")
	for range n {
		b.WriteString(`<tr><td style="padding:10px;font-family:Arial"><a href="https://example.com/t?id=123456&amp;u=abcdef">Read more</a>` +
			`<p>Lorem ipsum dolor sit amet, <b>consectetur</b> adipiscing elit, sed do eiusmod tempor.</p><img src="https://example.com/i.png" alt="" width="100"></td></tr>` + "\r\n")
	}
	b.WriteString("</table></body></html>\r\n")
	return b.Bytes()
}

func wrap76(data []byte) string {
	var b strings.Builder
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\r\n")
	return b.String()
}

// padTo grows a message to about n bytes with X- header lines, keeping its
// MIME structure.
func padTo(msg []byte, n int) []byte {
	var pad bytes.Buffer
	for i := 0; len(msg)+pad.Len() < n; i++ {
		fmt.Fprintf(&pad, "X-Pad-%d: %s\r\n", i, strings.Repeat("x", 60))
	}
	return append(pad.Bytes(), msg...)
}

// parseStable parses raw n times and fails unless every event is the
// first one; it returns that.
func parseStable(t *testing.T, raw []byte, n int) *event.Data {
	t.Helper()
	var first *event.Data
	var firstJSON []byte
	for i := range n {
		d, err := Parse(bytes.NewReader(raw), Options{})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(d)
		if i == 0 {
			first, firstJSON = d, got
		} else if !bytes.Equal(got, firstJSON) {
			t.Fatalf("parse %d differs from the first:\n%s\n%s", i, got, firstJSON)
		}
	}
	return first
}

// Warnings about malformed Content-Type parameters come out in one order
// (by name), not in the order of enmime's map: the same message must give
// the same event on every attempt. Before, 30 parses of three such
// parameters nearly always disagreed.
func TestMalformedParamWarningsInOrder(t *testing.T) {
	d := parseStable(t, []byte("Content-Type: text/plain; zz; aa; mm\r\n\r\nhello\r\n"), 30)
	var got []string
	for _, w := range d.Warnings {
		if strings.Contains(w, "malformed parameter") {
			got = append(got, w)
		}
	}
	if len(got) != 3 || !strings.Contains(got[0], `"aa"`) || !strings.Contains(got[1], `"mm"`) || !strings.Contains(got[2], `"zz"`) {
		t.Fatalf("warnings %q, want one per parameter: aa, mm, zz", got)
	}
}

// A text part with no usable charset is decoded with the charset
// detection ranks first, the same one on every parse: chardet's
// recognizers tie here (ISO-8859-1 and ISO-8859-2), and upstream took
// whichever goroutine answered first (third_party/chardet). Before, about
// every other parse of this fuzz-found input disagreed with the first.
func TestCharsetDetectionStable(t *testing.T) {
	parseStable(t, []byte("\x12\x12\x12\xf1\x12\x12\x12\x12Content\x80\x00\x00\x00a0\xffA0A\x19A0a0AaA0A\x19030Aaaaaa\xca2daaa0000Ansfer-En@\x8cding\x03\xe80000\xffA0A\x19A0a0AaA0A\x19000Aaaaaa\xca2daaa00A.0"), 50)
}

// Text comes out as the sender wrote it: a byte order mark decides the
// order of UTF-16; a correct ISO-8859-15 label is not traded for its
// sibling ISO-8859-1 (Œ, €); valid UTF-8 without a charset is UTF-8 even
// when short. Attachments are the bytes attached, decoded from their
// transfer encoding only (here checked against Go's own base64 decoder),
// and a text attachment's content_type says its charset.
func TestCharsetsAndAttachmentBytes(t *testing.T) {
	for name, want := range map[string]string{
		"utf16-bom":    "UTF-16 big endian: Grüße, 日本, 😀\n",
		"iso-8859-15":  "Œuvre à 15 €, cœur déçu",
		"no-mime-utf8": "Grüße\r\n",
	} {
		d := parseFile(t, filepath.Join("testdata", name+".eml"))
		if !strings.HasPrefix(d.Text, want) {
			t.Errorf("%s: text %q, want it to start with %q", name, d.Text, want)
		}
	}

	d := parseFile(t, filepath.Join("testdata", "text-attachments.eml"))
	raw, err := os.ReadFile(filepath.Join("testdata", "text-attachments.eml"))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]string{}
	for _, a := range d.Attachments {
		byName[a.Filename] = a.ContentType
		// The base64 body of the part, as it stands in the message.
		_, after, ok := bytes.Cut(raw, []byte(`filename="`+a.Filename+`"`))
		if !ok || a.Filename != "ru.txt" && a.Filename != "u16.txt" { // the base64 ones
			continue
		}
		_, body, _ := bytes.Cut(after, []byte("\r\n\r\n"))
		body, _, _ = bytes.Cut(body, []byte("--"))
		sent, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(strings.Join(strings.Fields(string(body)), ""), "="))
		if err != nil {
			t.Fatalf("%s: %v", a.Filename, err)
		}
		if !bytes.Equal(a.Content, sent) || a.Size != int64(len(sent)) {
			t.Errorf("%s: %d bytes %q, want the %d attached %q", a.Filename, a.Size, a.Content, len(sent), sent)
		}
	}
	if len(byName) != 4 {
		t.Errorf("attachments %v, want ru.txt, page.html, notes.txt and u16.txt", byName)
	}
	for _, a := range d.Attachments {
		if a.Filename == "page.html" && string(a.Content) != "<p>caf\xe9 attachment html</p>\r\n" { // quoted-printable, ISO-8859-1
			t.Errorf("page.html: %q, want its ISO-8859-1 bytes", a.Content)
		}
	}
	for name, ct := range map[string]string{"ru.txt": "text/plain; charset=windows-1251", "u16.txt": "text/plain; charset=utf-16"} {
		if byName[name] != ct {
			t.Errorf("%s: content_type %q, want %q", name, byName[name], ct)
		}
	}

	d = parseFile(t, filepath.Join("testdata", "part-without-type.eml"))
	if len(d.Attachments) == 0 || d.Attachments[0].Filename != "data.bin" || string(d.Attachments[0].Content) != "\x00\x10binary\xff" {
		t.Errorf("data.bin: %+v, want its 9 bytes as sent", d.Attachments)
	}
}

// Two 8-bit tables are siblings for a text when they read most of its
// 8-bit bytes the same: ISO-8859-1 and -15 on French, not windows-1252
// and windows-1251 on Russian, nor anything and UTF-8.
func TestSameReading(t *testing.T) {
	enc := func(e encoding.Encoding, s string) []byte {
		b, err := e.NewEncoder().Bytes([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	french := enc(charmap.ISO8859_15, "Œuvre à 15 €, cœur déçu, l'âme naïve.")
	russian := enc(charmap.Windows1251, "Это текст в кодировке windows-1251.")
	for _, c := range []struct {
		raw                []byte
		declared, detected string
		want               bool
	}{
		{french, "iso-8859-15", "ISO-8859-1", true},
		{russian, "windows-1252", "windows-1251", false},
		{russian, "windows-1251", "UTF-8", false},
		{[]byte("ascii only"), "iso-8859-15", "ISO-8859-1", false},
	} {
		if got := sameReading(c.raw, c.declared, c.detected); got != c.want {
			t.Errorf("sameReading(%q, %s, %s) = %v, want %v", c.raw, c.declared, c.detected, got, c.want)
		}
	}
}

// A parse told to stop at a part (StopAt) comes out as the parse whose
// time budget ran out there: the same warning, the same parts left out;
// BudgetSpent names the part either way.
func TestStopAtAsTheBudget(t *testing.T) {
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := range 4 {
		fmt.Fprintf(&b, "--b\r\nContent-Type: application/pdf; name=p%d.pdf\r\n\r\n%%PDF %d\r\n", i+1, i+1)
	}
	b.WriteString("--b--\r\n")
	raw := b.String()

	var spent []string
	parseWith := func(o Options) *event.Data {
		t.Helper()
		o.BudgetSpent = func(id string) { spent = append(spent, id) }
		d, err := Parse(strings.NewReader(raw), o)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// The budget run out at once: it stops at the first part.
	if d := parseWith(Options{MaxDuration: time.Nanosecond}); len(d.Attachments) != 0 || !slices.Equal(spent, []string{"1"}) {
		t.Fatalf("budget spent: %d attachments, reported %q", len(d.Attachments), spent)
	}
	spent = nil
	stopped := parseWith(Options{StopAt: "3"})
	if len(stopped.Attachments) != 2 || !slices.Equal(spent, []string{"3"}) ||
		!slices.Contains(stopped.Warnings, "part 3: parse time budget spent: this part and the rest not decoded") {
		t.Fatalf("StopAt 3: %d attachments, reported %q, warnings %q", len(stopped.Attachments), spent, stopped.Warnings)
	}
	again, _ := json.Marshal(parseWith(Options{StopAt: "3"}))
	if first, _ := json.Marshal(stopped); !bytes.Equal(first, again) {
		t.Error("two parses stopped at the same part differ")
	}
	if d := parseWith(Options{}); len(d.Attachments) != 4 {
		t.Errorf("without a budget spent: %d attachments", len(d.Attachments))
	}
}
