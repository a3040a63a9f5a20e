package signing_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailhook/mailhook/signing"
)

const (
	secretA = publishedSecret
	secretB = "whsec_bWFpbGhvb2stcm90YXRpb24tdGVzdC1rZXktMDAwMiE="
)

func mustSigner(t testing.TB, secrets ...string) *signing.Signer {
	t.Helper()
	s, err := signing.NewSigner(secrets...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewSigner(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		wantErr string // substring; "" = no error
	}{
		{"prefixed", []string{secretA}, ""},
		{"unprefixed", []string{strings.TrimPrefix(secretA, "whsec_")}, ""},
		{"surrounding spaces", []string{"  " + secretA + "\t"}, ""},
		{"padded base64", []string{secretB}, ""},
		{"one-byte key", []string{"whsec_AQ=="}, ""},
		{"long key", []string{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 200))}, ""},
		{"rotation", []string{secretA, secretB}, ""},
		{"none", nil, "no secret given"},
		{"empty", []string{""}, "secret #1 of 1: empty"},
		{"prefix only", []string{"whsec_"}, "secret #1 of 1: empty"},
		{"blank", []string{"   "}, "secret #1 of 1: empty"},
		{"second bad base64", []string{secretA, "whsec_not*base64!"}, "secret #2 of 2: not standard base64"},
		{"third missing padding", []string{secretA, secretB, "whsec_AQ"}, "secret #3 of 3: not standard base64"},
		{"url alphabet", []string{"whsec_-_-_"}, "secret #1 of 1: not standard base64"},
		{"decodes to nothing", []string{"whsec_===="}, "secret #1 of 1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := signing.NewSigner(tt.secrets...)
			if tt.wantErr == "" {
				if err != nil || s == nil {
					t.Fatalf("NewSigner: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewSigner: no error, want %q", tt.wantErr)
			}
			if !errors.Is(err, signing.ErrInvalidSecret) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewSigner: %q, want ErrInvalidSecret containing %q", err, tt.wantErr)
			}
			for _, secret := range tt.secrets {
				if b64 := strings.TrimSpace(strings.TrimPrefix(secret, "whsec_")); len(b64) > 1 && strings.Contains(err.Error(), b64) {
					t.Errorf("error %q quotes the secret", err)
				}
			}
		})
	}
}

var headerSyntax = regexp.MustCompile(`^v1,[A-Za-z0-9+/]{43}=( v1,[A-Za-z0-9+/]{43}=)*$`)

func TestSignFormatAndOrder(t *testing.T) {
	ts := time.Date(2026, 11, 28, 12, 0, 0, 999_999_999, time.UTC)
	body := []byte(`{"type":"email.received"}`)
	tests := []struct {
		name    string
		secrets []string
	}{
		{"one", []string{secretA}},
		{"two", []string{secretA, secretB}},
		{"two reversed", []string{secretB, secretA}},
		{"three", []string{secretA, secretB, signing.NewSecret()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustSigner(t, tt.secrets...).Sign("evt_1", ts, body)
			if !headerSyntax.MatchString(got) {
				t.Fatalf("Sign = %q: not a v1 header", got)
			}
			entries := strings.Split(got, " ")
			if len(entries) != len(tt.secrets) {
				t.Fatalf("Sign = %q: %d entries, want %d", got, len(entries), len(tt.secrets))
			}
			for i, secret := range tt.secrets {
				// Each entry is exactly what a one-secret signer makes,
				// in the configured order.
				if want := mustSigner(t, secret).Sign("evt_1", ts, body); entries[i] != want {
					t.Errorf("entry %d = %q, want %q", i, entries[i], want)
				}
				// And a receiver holding only that secret accepts the whole header.
				if err := signing.Verify(secret, "evt_1", strconv.FormatInt(ts.Unix(), 10), got, body, ts, 0); err != nil {
					t.Errorf("Verify with secret %d: %v", i+1, err)
				}
			}
		})
	}
}

func TestSignUsesWholeSeconds(t *testing.T) {
	s := mustSigner(t, secretA)
	body := []byte("{}")
	whole := time.Unix(1764331200, 0)
	for _, ts := range []time.Time{whole.Add(time.Nanosecond), whole.Add(999 * time.Millisecond), whole.In(time.FixedZone("X", 3600))} {
		if got, want := s.Sign("evt", ts, body), s.Sign("evt", whole, body); got != want {
			t.Errorf("Sign at %v = %q, want %q (same second)", ts, got, want)
		}
	}
}

func TestSetHeaders(t *testing.T) {
	ts := time.Unix(1764331200, 0)
	body := []byte(`{"a":1}`)

	h := http.Header{}
	s := mustSigner(t, secretA, secretB)
	s.SetHeaders(h, "evt_1", ts, body)
	if got := h.Get(signing.HeaderID); got != "evt_1" {
		t.Errorf("%s = %q", signing.HeaderID, got)
	}
	if got := h.Get(signing.HeaderTimestamp); got != "1764331200" {
		t.Errorf("%s = %q", signing.HeaderTimestamp, got)
	}
	if got, want := h.Get(signing.HeaderSignature), s.Sign("evt_1", ts, body); got != want {
		t.Errorf("%s = %q, want %q", signing.HeaderSignature, got, want)
	}
	if err := signing.VerifyRequest(secretB, h, body, ts.Add(time.Minute), 0); err != nil {
		t.Errorf("VerifyRequest: %v", err)
	}

	// A nil Signer (no secret configured) sends id and timestamp only, and
	// clears a stale signature.
	var none *signing.Signer
	none.SetHeaders(h, "evt_2", ts, body)
	if h.Get(signing.HeaderID) != "evt_2" || h.Get(signing.HeaderTimestamp) != "1764331200" {
		t.Errorf("nil Signer headers = %v", h)
	}
	if _, ok := h[http.CanonicalHeaderKey(signing.HeaderSignature)]; ok {
		t.Errorf("nil Signer left %s = %q", signing.HeaderSignature, h.Get(signing.HeaderSignature))
	}
	if got := none.Sign("evt", ts, body); got != "" {
		t.Errorf("nil Signer Sign = %q, want empty", got)
	}
	if err := none.Verify("evt", "1764331200", "v1,x", body, ts, 0); !errors.Is(err, signing.ErrInvalidSecret) {
		t.Errorf("nil Signer Verify = %v, want ErrInvalidSecret", err)
	}
}

// TestVerify covers what the shared vectors cannot express: tolerances,
// clocks far from the timestamp, rotation on the receiving side and
// repeated header lines.
func TestVerify(t *testing.T) {
	const ts = 1764331200
	body := []byte(`{"type":"email.received"}`)
	good := mustSigner(t, secretA).Sign("evt_1", time.Unix(ts, 0), body)
	tsStr := strconv.Itoa(ts)
	tests := []struct {
		name      string
		secret    string
		timestamp string
		header    string
		now       time.Time
		tolerance time.Duration
		want      error
	}{
		{"valid", secretA, tsStr, good, time.Unix(ts, 0), 0, nil},
		{"sub-second clock ignored", secretA, tsStr, good, time.Unix(ts+300, 999_999_999), 0, nil},
		{"custom tolerance within", secretA, tsStr, good, time.Unix(ts+10, 0), 10 * time.Second, nil},
		{"custom tolerance past", secretA, tsStr, good, time.Unix(ts+11, 0), 10 * time.Second, signing.ErrTimestamp},
		{"custom tolerance ahead", secretA, tsStr, good, time.Unix(ts-11, 0), 10 * time.Second, signing.ErrTimestamp},
		{"negative tolerance is default", secretA, tsStr, good, time.Unix(ts+300, 0), -time.Second, nil},
		{"negative tolerance is default, past", secretA, tsStr, good, time.Unix(ts+301, 0), -time.Second, signing.ErrTimestamp},
		{"huge tolerance", secretA, tsStr, good, time.Unix(0, 0), 1 << 62, nil},
		{"leading plus accepted", secretA, "+" + tsStr, good, time.Unix(ts, 0), 0, nil},
		{"trailing space", secretA, tsStr + " ", good, time.Unix(ts, 0), 0, signing.ErrTimestamp},
		{"fraction", secretA, tsStr + ".5", good, time.Unix(ts, 0), 0, signing.ErrTimestamp},
		{"overflowing int64", secretA, "99999999999999999999", good, time.Unix(ts, 0), 0, signing.ErrTimestamp},
		{"min int64 vs far future clock", secretA, "-9223372036854775808", good, time.Unix(1<<62, 0), 0, signing.ErrTimestamp},
		{"max int64 vs far past clock", secretA, "9223372036854775807", good, time.Unix(-1<<62, 0), 0, signing.ErrTimestamp},
		{"extra comma part", secretA, tsStr, good + ",x", time.Unix(ts, 0), 0, signing.ErrNoMatch},
		{"tab separated", secretA, tsStr, "v1,x\t" + good, time.Unix(ts, 0), 0, signing.ErrNoMatch},
		{"wrong secret", secretB, tsStr, good, time.Unix(ts, 0), 0, signing.ErrNoMatch},
		{"bad secret", "whsec_", tsStr, good, time.Unix(ts, 0), 0, signing.ErrInvalidSecret},
		{"only spaces", secretA, tsStr, "   ", time.Unix(ts, 0), 0, signing.ErrNoMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := signing.Verify(tt.secret, "evt_1", tt.timestamp, tt.header, body, tt.now, tt.tolerance)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSignerVerifyAcceptsAnyOfItsSecrets(t *testing.T) {
	ts := time.Unix(1764331200, 0)
	body := []byte(`{}`)
	receiver := mustSigner(t, secretB, secretA) // mid-rotation: holds old and new
	for _, secret := range []string{secretA, secretB} {
		sig := mustSigner(t, secret).Sign("evt", ts, body)
		if err := receiver.Verify("evt", "1764331200", sig, body, ts, 0); err != nil {
			t.Errorf("signed with one of its secrets: %v", err)
		}
	}
	other := mustSigner(t, signing.NewSecret()).Sign("evt", ts, body)
	if err := receiver.Verify("evt", "1764331200", other, body, ts, 0); !errors.Is(err, signing.ErrNoMatch) {
		t.Errorf("signed with a foreign secret: %v, want ErrNoMatch", err)
	}
}

func TestVerifyRequestJoinsRepeatedHeaders(t *testing.T) {
	ts := time.Unix(1764331200, 0)
	body := []byte(`{}`)
	h := http.Header{}
	h.Set(signing.HeaderID, "evt")
	h.Set(signing.HeaderTimestamp, "1764331200")
	h.Add(signing.HeaderSignature, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=")
	h.Add(signing.HeaderSignature, mustSigner(t, secretA).Sign("evt", ts, body))
	if err := signing.VerifyRequest(secretA, h, body, ts, 0); err != nil {
		t.Errorf("VerifyRequest: %v", err)
	}
}

func TestErrorsNeverQuoteSecrets(t *testing.T) {
	s := mustSigner(t, secretA, secretB)
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, s)
		for _, secret := range []string{secretA, secretB} {
			key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
			if strings.Contains(out, strings.TrimPrefix(secret, "whsec_")) || strings.Contains(out, string(key)) || strings.Contains(out, fmt.Sprint(key)) {
				t.Errorf("fmt %s of a Signer = %q: shows a key", format, out)
			}
		}
	}
}

func TestNewSecret(t *testing.T) {
	a, b := signing.NewSecret(), signing.NewSecret()
	if a == b {
		t.Fatal("NewSecret returned the same secret twice")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, signing.SecretPrefix))
	if !strings.HasPrefix(a, signing.SecretPrefix) || err != nil || len(key) != 32 {
		t.Errorf("NewSecret = %d-byte key, %v; want whsec_ and 32 bytes", len(key), err)
	}
	mustSigner(t, a)
}

// TestConcurrentUse shares one Signer across goroutines; run with -race.
func TestConcurrentUse(t *testing.T) {
	s := mustSigner(t, secretA, secretB)
	ts := time.Unix(1764331200, 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				id := fmt.Sprintf("evt_%d_%d", g, i)
				body := []byte(strings.Repeat("x", i*g))
				sig := s.Sign(id, ts, body)
				if err := s.Verify(id, "1764331200", sig, body, ts, 0); err != nil {
					t.Errorf("%s: %v", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestSignAllocations guards the hot path: the returned string is the only
// allocation once the Signer's pool is warm.
func TestSignAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	s := mustSigner(t, secretA, secretB)
	ts := time.Unix(1764331200, 0)
	body := make([]byte, 4096)
	id := "01KB4Q7N3Z8X2C6V9M0P5R7T1W"
	s.Sign(id, ts, body)
	if n := testing.AllocsPerRun(200, func() { s.Sign(id, ts, body) }); n > 1 {
		t.Errorf("Sign allocates %.1f times per call, want 1", n)
	}
	sig := s.Sign(id, ts, body)
	if n := testing.AllocsPerRun(200, func() { _ = s.Verify(id, "1764331200", sig, body, ts, 0) }); n > 0 {
		t.Errorf("Signer.Verify allocates %.1f times per call, want 0", n)
	}
}

func BenchmarkSign(b *testing.B) {
	ts := time.Unix(1764331200, 0)
	id := "01KB4Q7N3Z8X2C6V9M0P5R7T1W"
	for _, bc := range []struct {
		secrets int
		size    int
	}{{1, 1 << 10}, {2, 1 << 10}, {1, 64 << 10}, {2, 1 << 20}} {
		secrets := []string{secretA, secretB}[:bc.secrets]
		s := mustSigner(b, secrets...)
		body := make([]byte, bc.size)
		b.Run(fmt.Sprintf("secrets=%d/body=%dKiB", bc.secrets, bc.size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(bc.size))
			for b.Loop() {
				s.Sign(id, ts, body)
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	ts := time.Unix(1764331200, 0)
	id := "01KB4Q7N3Z8X2C6V9M0P5R7T1W"
	body := make([]byte, 1<<10)
	s := mustSigner(b, secretA)
	sig := mustSigner(b, secretA, secretB).Sign(id, ts, body)
	b.Run("Signer.Verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Verify(id, "1764331200", sig, body, ts, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := signing.Verify(secretA, id, "1764331200", sig, body, ts, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
