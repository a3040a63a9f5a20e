package signing_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mailhook/mailhook/signing"
)

// TestSignReaderEqualsSign: SignReader gives exactly Sign's header value,
// whatever the body size and however the reader splits it.
func TestSignReaderEqualsSign(t *testing.T) {
	one, err := signing.NewSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	two, err := signing.NewSigner(signing.NewSecret(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", signing.NewSecret())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ts := time.Unix(1674087231, 999_000_000)
	for _, size := range []int{0, 1, 63, 64 << 10, 64<<10 + 1, 3<<20 + 7} {
		body := make([]byte, size)
		for i := range body {
			body[i] = byte(rng.Uint32())
		}
		for _, s := range []*signing.Signer{one, two} {
			want := s.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body)
			got, err := s.SignReader("msg_p5jXN8AQM9LWM0D4loKWxJek", ts, bytes.NewReader(body))
			if err != nil || got != want {
				t.Errorf("%s, %d bytes: SignReader = %q, %v; want %q", s, size, got, err, want)
			}
			if size < 100<<10 {
				got, err = s.SignReader("msg_p5jXN8AQM9LWM0D4loKWxJek", ts, iotest.HalfReader(iotest.OneByteReader(bytes.NewReader(body))))
				if err != nil || got != want {
					t.Errorf("%s, %d bytes, one byte at a time: SignReader = %q, %v; want %q", s, size, got, err, want)
				}
			}
			if err := s.Verify("msg_p5jXN8AQM9LWM0D4loKWxJek", "1674087231", want, body, ts, 0); err != nil {
				t.Errorf("%s, %d bytes: Verify: %v", s, size, err)
			}
		}
	}
}

func TestSignReaderErrors(t *testing.T) {
	var none *signing.Signer
	if got, err := none.SignReader("id", time.Now(), iotest.ErrReader(errors.New("unread"))); got != "" || err != nil {
		t.Errorf("nil Signer: SignReader = %q, %v; want \"\", nil", got, err)
	}
	s, err := signing.NewSigner(signing.NewSecret())
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	got, err := s.SignReader("id", time.Now(), iotest.ErrReader(boom))
	if got != "" || !errors.Is(err, boom) {
		t.Errorf("failing reader: SignReader = %q, %v; want \"\" and an error wrapping boom", got, err)
	}
	if err != nil && strings.Contains(err.Error(), "whsec_") {
		t.Errorf("error %q quotes a secret", err)
	}
}
