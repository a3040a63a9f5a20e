package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/mailhook/mailhook/store"
)

// ErrNoConditionalWrites: the server ignores If-None-Match or If-Match on
// PutObject, so replicas sharing the bucket could overwrite each other's
// state. It is a configuration problem, not an outage.
var ErrNoConditionalWrites = errors.New("s3: the server does not honour conditional writes (If-None-Match, If-Match)")

// ErrIfMatchCreates: the server enforces If-None-Match and If-Match on
// existing keys, but a PutObject with If-Match on a key that does not
// exist creates it instead of failing (MinIO releases before the fix of
// minio/minio#21526, Aug 2025). mailhook can run on it: the only writes
// that meet a missing key are those of a replica that lost a race for a
// delivery (its record or lease was just removed by another), and what
// they can cause is a delivery made twice, with the same webhook-id,
// never one lost.
var ErrIfMatchCreates = errors.New("s3: the server lets If-Match create a key that does not exist")

// ErrDeleteIgnoresIfMatch: the server deletes an object whatever the
// If-Match of the DeleteObject says (or refuses the header, and deletes
// are made without it). mailhook can run on it: a replay that races a
// delivery's change of state (its record written under the new state,
// then the old one deleted) can then lose that delivery's record, a rare
// race that the condition closes.
var ErrDeleteIgnoresIfMatch = errors.New("s3: the server ignores If-Match on DeleteObject")

// CheckConditionalWrites proves that the server enforces conditional
// writes, and that the credentials may write and delete, by writing a small
// probe object below the prefix ("_mailhook_check/<random>") and deleting
// it. It returns nil, an error wrapping ErrNoConditionalWrites (the server
// accepted a write it should have refused, or answered 501), one wrapping
// ErrIfMatchCreates or ErrDeleteIgnoresIfMatch, or both, alone (every
// other check held: mailhook can run, with a warning), or another
// Check-style error (ErrAccess, store.ErrUnavailable, …).
func (s *Store) CheckConditionalWrites(ctx context.Context) (err error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	key := "_mailhook_check/" + hex.EncodeToString(b)
	body := func() *strings.Reader { return strings.NewReader("mailhook conditional write check\n") }
	fail := func(what string) error {
		return fmt.Errorf("s3: check %s: %w: %s", s, ErrNoConditionalWrites, what)
	}
	defer func() {
		if derr := s.Delete(context.WithoutCancel(ctx), key); derr != nil && (err == nil || errors.Is(err, ErrIfMatchCreates) || errors.Is(err, ErrDeleteIgnoresIfMatch)) {
			err = fmt.Errorf("s3: check %s: delete probe: %w", s, derr)
		}
	}()

	first, err := s.Put(ctx, key, body(), store.PutOptions{IfNoneMatch: true})
	if err != nil {
		return conditionalErr(s, "create", err)
	}
	switch _, err := s.Put(ctx, key, body(), store.PutOptions{IfNoneMatch: true}); {
	case err == nil:
		return fail("If-None-Match: * replaced an existing object")
	case !errors.Is(err, store.ErrPrecondition):
		return conditionalErr(s, "second create", err)
	}
	switch _, err := s.Put(ctx, key, body(), store.PutOptions{IfMatch: `"00000000000000000000000000000000"`}); {
	case err == nil:
		return fail("If-Match with a wrong ETag replaced the object")
	case !errors.Is(err, store.ErrPrecondition):
		return conditionalErr(s, "stale replace", err)
	}
	var lax error
	switch _, err := s.Put(ctx, key+"-missing", body(), store.PutOptions{IfMatch: first.ETag}); {
	case err == nil:
		if derr := s.Delete(context.WithoutCancel(ctx), key+"-missing"); derr != nil {
			return fmt.Errorf("s3: check %s: delete probe: %w", s, derr)
		}
		lax = fmt.Errorf("s3: check %s: %w (MinIO before the fix of minio/minio#21526 does this)", s, ErrIfMatchCreates)
	case !errors.Is(err, store.ErrPrecondition):
		return conditionalErr(s, "replace of a missing key", err)
	}
	// Other bytes: an ETag is the content's MD5, and the delete below
	// names the first version.
	replaced := strings.NewReader("mailhook conditional write check, replaced\n")
	if _, err := s.Put(ctx, key, replaced, store.PutOptions{IfMatch: first.ETag}); err != nil {
		return conditionalErr(s, "replace", err)
	}
	switch err := s.DeleteIfMatch(ctx, key, first.ETag); { // a replaced version
	case errors.Is(err, store.ErrPrecondition):
	case err == nil:
		lax = errors.Join(lax, fmt.Errorf("s3: check %s: %w", s, ErrDeleteIgnoresIfMatch))
	default:
		return conditionalErr(s, "delete of a replaced version", err)
	}
	return lax
}

func conditionalErr(s *Store, step string, err error) error {
	if errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("s3: check %s: %w: %s: %w", s, ErrNoConditionalWrites, step, err)
	}
	return fmt.Errorf("s3: check %s: conditional write probe, %s: %w", s, step, err)
}
