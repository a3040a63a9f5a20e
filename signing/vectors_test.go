package signing_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/mailhook/mailhook/signing"
)

// vectorFile is the shape of testdata/vectors.json; its "about" field
// describes it for receivers in other languages.
type vectorFile struct {
	About            string   `json:"about"`
	ToleranceSeconds int      `json:"tolerance_seconds"`
	Vectors          []vector `json:"vectors"`
}

type vector struct {
	Name      string   `json:"name"`
	Valid     bool     `json:"valid"`
	Error     string   `json:"error,omitempty"` // missing_headers, timestamp or no_match
	Secret    string   `json:"secret"`
	SignWith  []string `json:"sign_with,omitempty"`
	ID        string   `json:"id"`
	Timestamp string   `json:"timestamp"`
	Body      string   `json:"body"`
	Signature string   `json:"signature"`
	Now       int64    `json:"now,omitempty"`
}

// errorKinds maps the vector file's error names to our sentinels.
var errorKinds = map[string]error{
	"missing_headers": signing.ErrMissingHeaders,
	"timestamp":       signing.ErrTimestamp,
	"no_match":        signing.ErrNoMatch,
}

func loadVectors(t *testing.T) vectorFile {
	t.Helper()
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("testdata/vectors.json: %v", err)
	}
	if len(f.Vectors) == 0 || f.ToleranceSeconds != int(signing.DefaultTolerance/time.Second) {
		t.Fatalf("testdata/vectors.json: %d vectors, tolerance %ds; want some, and %s", len(f.Vectors), f.ToleranceSeconds, signing.DefaultTolerance)
	}
	return f
}

// checkOutcome fails t unless err is what the vector expects.
func checkOutcome(t *testing.T, v vector, err error) {
	t.Helper()
	if v.Valid {
		if err != nil {
			t.Errorf("%s: got %v, want valid", v.Name, err)
		}
		return
	}
	want, ok := errorKinds[v.Error]
	if !ok {
		t.Fatalf("%s: unknown error kind %q in vectors.json", v.Name, v.Error)
	}
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", v.Name, err, want)
	}
}

// TestVectors proves that every committed vector verifies (or fails) as
// stated, through both entry points, and that Sign reproduces every
// signature that the reference JavaScript library computed for the file.
func TestVectors(t *testing.T) {
	f := loadVectors(t)
	var published, signed int
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			now := time.Unix(v.Now, 0)
			checkOutcome(t, v, signing.Verify(v.Secret, v.ID, v.Timestamp, v.Signature, []byte(v.Body), now, 0))

			h := http.Header{}
			for name, value := range map[string]string{
				signing.HeaderID: v.ID, signing.HeaderTimestamp: v.Timestamp, signing.HeaderSignature: v.Signature,
			} {
				if value != "" {
					h.Set(name, value)
				}
			}
			checkOutcome(t, v, signing.VerifyRequest(v.Secret, h, []byte(v.Body), now, 0))

			if len(v.SignWith) == 0 {
				return
			}
			signed++
			s, err := signing.NewSigner(v.SignWith...)
			if err != nil {
				t.Fatal(err)
			}
			unix, err := strconv.ParseInt(v.Timestamp, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Sign(v.ID, time.Unix(unix, 0), []byte(v.Body)); got != v.Signature {
				t.Errorf("Sign = %q, want %q", got, v.Signature)
			}
		})
		if v.Signature == publishedSignature && v.Secret == publishedSecret && v.Valid {
			published++
		}
	}
	if published == 0 || signed < 5 {
		t.Errorf("vectors.json has %d copies of the published vector and %d signing vectors; want the published one and at least 5", published, signed)
	}
}

// The Standard Webhooks libraries' published vector, held here as well so
// that regenerating vectors.json cannot drop it unnoticed.
const (
	publishedSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	publishedID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	publishedTimestamp = 1614265330
	publishedBody      = `{"test": 2432232314}`
	publishedSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestPublishedVector(t *testing.T) {
	s, err := signing.NewSigner(publishedSecret)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(publishedTimestamp, 0)
	if got := s.Sign(publishedID, ts, []byte(publishedBody)); got != publishedSignature {
		t.Errorf("Sign = %q, want %q", got, publishedSignature)
	}
	if err := signing.Verify(publishedSecret, publishedID, strconv.Itoa(publishedTimestamp), publishedSignature, []byte(publishedBody), ts, 0); err != nil {
		t.Errorf("Verify: %v", err)
	}
}
