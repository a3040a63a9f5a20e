package parse

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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
