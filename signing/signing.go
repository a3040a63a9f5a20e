package signing

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header names of the Standard Webhooks v1 format. HTTP header names are
// case-insensitive; [http.Header] stores them canonicalised ("Webhook-Id").
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix marks a Standard Webhooks secret; it is optional on input.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a webhook-timestamp may lie from the
// verifier's clock, either way, when the caller passes a tolerance <= 0. It
// is the reference libraries' value.
const DefaultTolerance = 5 * time.Minute

// Errors returned by this package; test for them with [errors.Is]. The
// returned errors wrap these with detail, never with a secret.
var (
	// ErrInvalidSecret: a secret is empty or not base64, or none was given.
	ErrInvalidSecret = errors.New("signing: invalid secret")
	// ErrMissingHeaders: webhook-id, webhook-timestamp or webhook-signature
	// is absent or empty.
	ErrMissingHeaders = errors.New("signing: missing webhook-id, webhook-timestamp or webhook-signature")
	// ErrTimestamp: webhook-timestamp is not an integer, or lies further
	// than the tolerance from the verifier's clock (too old: a possible
	// replay; too new: a skewed or forged clock).
	ErrTimestamp = errors.New("signing: bad webhook-timestamp")
	// ErrNoMatch: no v1 entry of webhook-signature matches any secret.
	ErrNoMatch = errors.New("signing: no matching v1 signature")
)

const (
	version    = "v1,"
	sigLen     = sha256.Size
	encodedLen = 44 // base64.StdEncoding.EncodedLen(sha256.Size)
	entryLen   = len(version) + encodedLen
	// maxPooledScratch bounds the scratch buffer kept in the pool, so one
	// huge webhook-id does not pin memory forever.
	maxPooledScratch = 4 << 10
)

// Signer signs (and verifies) with one or more secrets. It is safe for
// concurrent use. A nil *Signer signs nothing: Sign returns "" and
// SetHeaders sets only webhook-id and webhook-timestamp, which suits a
// deployment with no secret configured.
type Signer struct {
	keys [][]byte
	pool sync.Pool // of *state
}

// state is the per-goroutine scratch space of a Signer: one HMAC per key
// (reset, not rebuilt, between uses) and buffers, so that signing allocates
// only the returned string.
type state struct {
	macs    []hash.Hash
	scratch []byte
	sum     [sigLen]byte
	enc     [][encodedLen]byte // per key: the encoded signature of the last message
}

// NewSigner parses secrets written "whsec_<base64 key>" (the prefix is
// optional; surrounding spaces are ignored). Every secret is used, in the
// given order, by Sign, and any of them is accepted by [Signer.Verify].
// Keys of any non-zero length are accepted, as the reference libraries do.
// An error names the bad secret by its position, never by its content.
func NewSigner(secrets ...string) (*Signer, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: no secret given", ErrInvalidSecret)
	}
	s := &Signer{keys: make([][]byte, len(secrets))}
	for i, secret := range secrets {
		key, err := decodeSecret(secret)
		if err != nil {
			return nil, fmt.Errorf("%w: secret #%d of %d: %s", ErrInvalidSecret, i+1, len(secrets), err)
		}
		s.keys[i] = key
	}
	s.pool.New = func() any { return s.newState() }
	return s, nil
}

// decodeSecret returns the key of one secret. Its errors never quote the
// secret: base64's own errors give only an offset.
func decodeSecret(secret string) ([]byte, error) {
	b64 := strings.TrimPrefix(strings.TrimSpace(secret), SecretPrefix)
	if b64 == "" {
		return nil, errors.New("empty")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("not standard base64 (%v)", err)
	}
	if len(key) == 0 {
		return nil, errors.New("empty key")
	}
	return key, nil
}

// NewSecret returns a fresh random secret, "whsec_" and 32 random bytes in
// base64, for configuration and tests.
func NewSecret() string {
	var key [32]byte
	_, _ = rand.Read(key[:]) // crypto/rand.Read never fails; it crashes the program instead
	return SecretPrefix + base64.StdEncoding.EncodeToString(key[:])
}

// String describes the Signer without its keys, so that logging one by
// mistake leaks nothing.
func (s *Signer) String() string {
	if s == nil {
		return "signing.Signer(none)"
	}
	return fmt.Sprintf("signing.Signer(%d secrets)", len(s.keys))
}

// GoString is String, for %#v.
func (s *Signer) GoString() string { return s.String() }

func (s *Signer) newState() *state {
	st := &state{
		macs: make([]hash.Hash, len(s.keys)),
		enc:  make([][encodedLen]byte, len(s.keys)),
	}
	for i, key := range s.keys {
		st.macs[i] = hmac.New(sha256.New, key)
	}
	return st
}

func (s *Signer) put(st *state) {
	if cap(st.scratch) > maxPooledScratch {
		st.scratch = nil
	}
	s.pool.Put(st)
}

// compute fills st.enc with every key's base64 signature of
// id + "." + unix + "." + body.
func (st *state) compute(id string, unix int64, body []byte) {
	st.scratch = append(st.scratch[:0], id...)
	st.scratch = append(st.scratch, '.')
	st.scratch = strconv.AppendInt(st.scratch, unix, 10)
	st.scratch = append(st.scratch, '.')
	for i, mac := range st.macs {
		mac.Reset()
		mac.Write(st.scratch)
		mac.Write(body)
		base64.StdEncoding.Encode(st.enc[i][:], mac.Sum(st.sum[:0]))
	}
}

// Sign returns the webhook-signature header value for one delivery attempt:
// "v1,<base64 HMAC-SHA256(key, id.unix-seconds.body)>" per secret, in the
// configured order, separated by single spaces. ts is truncated to whole
// seconds. body must be exactly the bytes sent. It allocates only the
// returned string.
func (s *Signer) Sign(id string, ts time.Time, body []byte) string {
	if s == nil || len(s.keys) == 0 {
		return ""
	}
	st := s.pool.Get().(*state)
	st.compute(id, ts.Unix(), body)
	var b strings.Builder
	b.Grow(len(st.enc)*(entryLen+1) - 1)
	for i := range st.enc {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(version)
		b.Write(st.enc[i][:])
	}
	s.put(st)
	return b.String()
}

// SignReader is [Signer.Sign] over a body read from body to its end, for
// bodies too large to hold in memory: it returns exactly what Sign returns
// for the same bytes. The only error is one from reading body, and then the
// signature is "". On a nil Signer it returns "" without reading.
func (s *Signer) SignReader(id string, ts time.Time, body io.Reader) (string, error) {
	if s == nil || len(s.keys) == 0 {
		return "", nil
	}
	st := s.newState() // not pooled: the copy buffer below dwarfs it
	prefix := strconv.AppendInt(append([]byte(id), '.'), ts.Unix(), 10)
	prefix = append(prefix, '.')
	ws := make([]io.Writer, len(st.macs))
	for i, mac := range st.macs {
		mac.Write(prefix)
		ws[i] = mac
	}
	w := ws[0]
	if len(ws) > 1 {
		w = io.MultiWriter(ws...)
	}
	if _, err := io.CopyBuffer(w, struct{ io.Reader }{body}, make([]byte, 64<<10)); err != nil {
		return "", fmt.Errorf("signing: read body: %w", err)
	}
	var b strings.Builder
	b.Grow(len(st.macs)*(entryLen+1) - 1)
	for i, mac := range st.macs {
		base64.StdEncoding.Encode(st.enc[i][:], mac.Sum(st.sum[:0]))
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(version)
		b.Write(st.enc[i][:])
	}
	return b.String(), nil
}

// SetHeaders sets webhook-id, webhook-timestamp and webhook-signature on h
// for one attempt. On a nil Signer it sets the first two and removes the
// signature.
func (s *Signer) SetHeaders(h http.Header, id string, ts time.Time, body []byte) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	if sig := s.Sign(id, ts, body); sig != "" {
		h.Set(HeaderSignature, sig)
	} else {
		h.Del(HeaderSignature)
	}
}

// Verify checks one delivery against secret (a "whsec_…" string): the
// three header values as received, the raw body, the receiver's clock and
// the accepted clock difference (<= 0 means [DefaultTolerance]). It returns
// nil if the timestamp is within tolerance and any v1 entry of
// signatureHeader matches; entries of other versions are ignored. Errors
// wrap ErrMissingHeaders, ErrTimestamp, ErrNoMatch or ErrInvalidSecret.
//
// To verify many requests, or with several secrets during a rotation, make
// a Signer once and use [Signer.Verify].
func Verify(secret string, id, timestamp, signatureHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	s, err := NewSigner(secret)
	if err != nil {
		return err
	}
	return s.Verify(id, timestamp, signatureHeader, body, now, tolerance)
}

// VerifyRequest is [Verify] with the values taken from request headers h.
// Several webhook-signature header lines are treated as one list.
func VerifyRequest(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	s, err := NewSigner(secret)
	if err != nil {
		return err
	}
	return s.VerifyRequest(h, body, now, tolerance)
}

// VerifyRequest is [Signer.Verify] with the values taken from request
// headers h.
func (s *Signer) VerifyRequest(h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	sig := h.Values(HeaderSignature)
	return s.Verify(h.Get(HeaderID), h.Get(HeaderTimestamp), strings.Join(sig, " "), body, now, tolerance)
}

// Verify is the package-level [Verify], accepting a match with any of the
// Signer's secrets.
func (s *Signer) Verify(id, timestamp, signatureHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	if s == nil || len(s.keys) == 0 {
		return fmt.Errorf("%w: no secret given", ErrInvalidSecret)
	}
	if id == "" || timestamp == "" || signatureHeader == "" {
		return ErrMissingHeaders
	}
	unix, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: not a decimal integer of Unix seconds", ErrTimestamp)
	}
	if err := checkTimestamp(unix, now.Unix(), tolerance); err != nil {
		return err
	}

	st := s.pool.Get().(*state)
	defer s.put(st)
	st.compute(id, unix, body)

	var candidate [encodedLen]byte
	for entry := range strings.SplitSeq(signatureHeader, " ") {
		v, sig, ok := strings.Cut(entry, ",")
		if !ok || v != "v1" || len(sig) != encodedLen {
			continue
		}
		copy(candidate[:], sig)
		for i := range st.enc {
			if subtle.ConstantTimeCompare(candidate[:], st.enc[i][:]) == 1 {
				return nil
			}
		}
	}
	return ErrNoMatch
}

// checkTimestamp compares in whole seconds, as the reference libraries do:
// a difference of exactly the tolerance passes. It cannot overflow, whatever
// the inputs.
func checkTimestamp(unix, now int64, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	tol := uint64(tolerance / time.Second)
	switch {
	case unix < now && uint64(now)-uint64(unix) > tol:
		return fmt.Errorf("%w: %ds older than now, tolerance %s", ErrTimestamp, uint64(now)-uint64(unix), tolerance)
	case unix > now && uint64(unix)-uint64(now) > tol:
		return fmt.Errorf("%w: %ds ahead of now, tolerance %s", ErrTimestamp, uint64(unix)-uint64(now), tolerance)
	}
	return nil
}
