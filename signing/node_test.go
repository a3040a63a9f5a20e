package signing_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/signing"
)

// nodeResult is one output line of testdata/node/verify.mjs.
type nodeResult struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// runNodeVerifier feeds a vector document to the stock npm library
// "standardwebhooks" and returns its verdict per vector name.
func runNodeVerifier(t *testing.T, modules string, doc vectorFile) map[string]nodeResult {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("MAILHOOK_NODE_MODULES is set but node is not installed: %v", err)
	}
	input, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "node", "verify.mjs"), "-")
	cmd.Env = append(os.Environ(), "MAILHOOK_NODE_MODULES="+modules)
	cmd.Stdin = bytes.NewReader(input)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	// Exit status 1 only means some vector disagreed; the caller judges
	// every line itself and says which.
	if exit, ok := err.(*exec.ExitError); err != nil && !(ok && exit.ExitCode() == 1) {
		t.Fatalf("node verify.mjs: %v\n%s", err, stderr.Bytes())
	}
	results := map[string]nodeResult{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var r nodeResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("node verify.mjs printed %q: %v", sc.Text(), err)
		}
		results[r.Name] = r
	}
	if len(results) != len(doc.Vectors) {
		t.Fatalf("node verify.mjs judged %d vectors, want %d\nstderr: %s", len(results), len(doc.Vectors), stderr.Bytes())
	}
	return results
}

// TestNodeReferenceLibrary checks, with the stock Node library, the
// committed vectors and a batch of deliveries freshly signed by Signer at
// the real time. CI installs the library:
//
//	npm install --prefix /tmp/nodewh standardwebhooks@1.1.1
//	MAILHOOK_NODE_MODULES=/tmp/nodewh/node_modules go test ./signing/
func TestNodeReferenceLibrary(t *testing.T) {
	modules := os.Getenv("MAILHOOK_NODE_MODULES")
	if modules == "" {
		t.Skip("MAILHOOK_NODE_MODULES unset: skipping the cross-check against the npm package standardwebhooks " +
			"(npm install --prefix /tmp/nodewh standardwebhooks@1.1.1 and set MAILHOOK_NODE_MODULES=/tmp/nodewh/node_modules)")
	}

	t.Run("committed vectors", func(t *testing.T) {
		f := loadVectors(t)
		results := runNodeVerifier(t, modules, f)
		for _, v := range f.Vectors {
			r := results[v.Name]
			if r.OK != v.Valid || !v.Valid && r.Kind != v.Error {
				t.Errorf("%s: node says ok=%v kind=%q (%s); vectors.json says valid=%v error=%q", v.Name, r.OK, r.Kind, r.Message, v.Valid, v.Error)
			}
		}
	})

	t.Run("fresh signatures", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		secrets := []string{signing.NewSecret(), signing.NewSecret(), secretA}
		signer := mustSigner(t, secrets...)
		bodies := []string{
			"",
			`{}`,
			`{"type":"email.received","data":{"subject":"Grüße — 日本語 ✉️","text":"a\r\nb\n"}}`,
			`{"raw":"` + strings.Repeat("QUJD", 50_000) + `"}`,
		}
		var doc vectorFile
		want := map[string]bool{}
		for i := range 24 {
			body := bodies[i%len(bodies)]
			if i >= len(bodies) {
				body = fmt.Sprintf(`{"n":%d,"s":%q}`, rng.Int64(), randomText(rng, rng.IntN(300)))
			}
			id := fmt.Sprintf("evt_%d_%x", i, rng.Uint64())
			now := time.Now()
			v := vector{
				Name:      fmt.Sprintf("fresh-%d", i),
				Secret:    secrets[i%len(secrets)],
				ID:        id,
				Timestamp: strconv.FormatInt(now.Unix(), 10),
				Body:      body,
				Signature: signer.Sign(id, now, []byte(body)),
				Valid:     true,
			}
			if i%4 == 3 { // tampered copies keep the check honest
				v.Body += " "
				v.Valid, v.Error = false, "no_match"
			}
			want[v.Name] = v.Valid
			doc.Vectors = append(doc.Vectors, v)
		}
		for name, r := range runNodeVerifier(t, modules, doc) {
			if r.OK != want[name] {
				t.Errorf("%s: node says ok=%v (%s), want %v", name, r.OK, r.Message, want[name])
			}
		}
	})
}

// randomText returns n runes of mixed scripts, all valid UTF-8.
func randomText(rng *rand.Rand, n int) string {
	ranges := [][2]rune{{0x20, 0x7e}, {0xa0, 0x24f}, {0x3040, 0x30ff}, {0x4e00, 0x4fff}, {0x1f300, 0x1f5ff}}
	var b strings.Builder
	for range n {
		r := ranges[rng.IntN(len(ranges))]
		b.WriteRune(r[0] + rng.Int32N(r[1]-r[0]+1))
	}
	return b.String()
}
