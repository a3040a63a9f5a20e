package parse

import (
	"bytes"
	"encoding/json"
	"os"
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
// enmime. Seeds: the corpus and testdata/fuzz/FuzzParseFastPaths (which
// started as FuzzParse's hostile shapes).
func FuzzParseFastPaths(f *testing.F) {
	seeds := corpus(f)
	for _, path := range seeds {
		raw, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fast, slow := parseBoth(t, raw, Options{MaxDepth: 8, MaxParts: 64, MaxAttachmentBytes: 1 << 10})
		if !bytes.Equal(fast, slow) {
			t.Fatalf("fast paths differ from enmime on %q:\nfast   %s\nenmime %s", raw, fast, slow)
		}
	})
}
