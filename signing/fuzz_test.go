package signing_test

import (
	"errors"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/signing"
)

// FuzzVerify feeds arbitrary header values, bodies, clocks and tolerances to
// Verify. It must never panic, must fail only with the package's sentinels,
// must accept only a header holding the right v1 entry, and must accept the
// right entry whenever the timestamp is within tolerance, computed here
// independently with big integers.
func FuzzVerify(f *testing.F) {
	f.Add(publishedID, strconv.Itoa(publishedTimestamp), publishedSignature, []byte(publishedBody), int64(publishedTimestamp), int64(0))
	f.Add("id", "1", "v1,", []byte(nil), int64(1), int64(-1))
	f.Add("", "-9223372036854775808", "v1,a v2,b ,, v1", []byte("x"), int64(9223372036854775807), int64(1<<62))

	s, err := signing.NewSigner(publishedSecret)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, timestamp, header string, body []byte, nowUnix, tolerance int64) {
		now := time.Unix(nowUnix, 0)
		tol := time.Duration(tolerance)

		err := s.Verify(id, timestamp, header, body, now, tol)
		if err != nil && !errors.Is(err, signing.ErrMissingHeaders) && !errors.Is(err, signing.ErrTimestamp) && !errors.Is(err, signing.ErrNoMatch) {
			t.Fatalf("Verify returned a foreign error: %v", err)
		}

		unix, perr := strconv.ParseInt(timestamp, 10, 64)
		var want string
		if perr == nil {
			want = s.Sign(id, time.Unix(unix, 0), body)
		}
		if err == nil {
			if perr != nil {
				t.Fatalf("Verify accepted unparsable timestamp %q", timestamp)
			}
			found := false
			for entry := range strings.SplitSeq(header, " ") {
				found = found || entry == want
			}
			if !found {
				t.Fatalf("Verify accepted header %q without the right entry %q", header, want)
			}
		}

		// With the right entry appended, the outcome depends only on the
		// headers being present and the clock.
		err = s.Verify(id, timestamp, header+" "+want, body, now, tol)
		switch {
		case id == "" || timestamp == "":
			if !errors.Is(err, signing.ErrMissingHeaders) {
				t.Fatalf("missing header: got %v", err)
			}
		case perr != nil:
			if !errors.Is(err, signing.ErrTimestamp) {
				t.Fatalf("bad timestamp %q: got %v", timestamp, err)
			}
		case withinTolerance(unix, nowUnix, tol):
			if err != nil {
				t.Fatalf("right entry, timestamp %d, now %d, tolerance %v: got %v", unix, nowUnix, tol, err)
			}
		default:
			if !errors.Is(err, signing.ErrTimestamp) {
				t.Fatalf("timestamp %d, now %d, tolerance %v: got %v, want ErrTimestamp", unix, nowUnix, tol, err)
			}
		}
	})
}

// withinTolerance is the reference rule, |now - ts| <= whole seconds of the
// tolerance (default when <= 0), without any chance of overflow.
func withinTolerance(ts, now int64, tol time.Duration) bool {
	if tol <= 0 {
		tol = signing.DefaultTolerance
	}
	diff := new(big.Int).Sub(big.NewInt(now), big.NewInt(ts))
	return diff.Abs(diff).Cmp(big.NewInt(int64(tol/time.Second))) <= 0
}
