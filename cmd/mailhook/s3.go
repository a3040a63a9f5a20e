package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/store"
	s3store "github.com/mailhook/mailhook/store/s3"
)

// openS3 opens an S3-compatible bucket and proves, before anything is
// accepted, that it exists, that the credentials may read, write and delete
// there, and that the server enforces conditional writes (replicas rely on
// them). Every failure names the variable to fix and exits 2. A server
// whose only fault is that If-Match creates a missing key is used, with a
// warning on log: on it a race between replicas can deliver a message
// twice (same webhook-id), never lose one.
func openS3(ctx context.Context, cfg *config.Config, u config.StoreURL, log *slog.Logger) (store.Store, error) {
	st, err := s3store.New(ctx, s3store.Config{
		Bucket:    u.Bucket,
		Prefix:    u.Prefix,
		Endpoint:  cfg.S3Endpoint,
		Region:    cfg.S3Region,
		PathStyle: cfg.S3PathStyle,
	})
	if err != nil {
		return nil, usageError{fmt.Errorf("MAILHOOK_STORE=%q: %w", cfg.Store, err)}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for try := 0; ; try++ {
		err = st.Check(ctx)
		if err == nil {
			err = st.CheckConditionalWrites(ctx)
		}
		if err == nil || try == 2 || !retryCheck(err) {
			break
		}
		// Replicas starting together probe side by side; a server may
		// answer one with a conflict (versitygw on a directory: 409
		// ExistingObjectIsDirectory while another removes its probe).
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(200*(try+1)) * time.Millisecond):
		}
	}
	lax := false
	if errors.Is(err, s3store.ErrIfMatchCreates) {
		log.Warn("this S3 server lets a conditional replace (If-Match) create an object that does not exist; "+
			"with several replicas a race can then deliver a message twice (same webhook-id); upgrade the server to fix it",
			"store", st.String(), "err", err)
		lax = true
	}
	if errors.Is(err, s3store.ErrDeleteIgnoresIfMatch) {
		log.Warn("this S3 server ignores If-Match on DeleteObject; a replay racing a delivery's change of state "+
			"can then lose the delivery's record (rare); upgrade the server to fix it",
			"store", st.String(), "err", err)
		lax = true
	}
	if lax {
		err = nil
	}
	if err == nil {
		return st, nil
	}
	endpoint := cfg.S3Endpoint
	if endpoint == "" {
		endpoint = "AWS"
	}
	var hint string
	switch {
	case errors.Is(err, s3store.ErrNoBucket):
		hint = fmt.Sprintf("bucket %q does not exist at %s: create it, or fix MAILHOOK_STORE / MAILHOOK_S3_ENDPOINT", u.Bucket, endpoint)
	case errors.Is(err, s3store.ErrAccess):
		hint = "access denied: check the AWS credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profile or role) and the bucket policy"
	case errors.Is(err, s3store.ErrWrongRegion):
		hint = "wrong region: set MAILHOOK_S3_REGION to the bucket's region"
	case errors.Is(err, s3store.ErrNoConditionalWrites):
		hint = "this S3 server does not enforce If-None-Match/If-Match on PutObject, which mailhook needs; upgrade it or use another server"
	case errors.Is(err, store.ErrUnavailable):
		hint = fmt.Sprintf("cannot reach %s: check MAILHOOK_S3_ENDPOINT (and MAILHOOK_S3_PATH_STYLE)", endpoint)
	default:
		hint = fmt.Sprintf("the S3 server at %s failed the start-up check (writing, replacing and deleting a probe object under _mailhook_check/)", endpoint)
	}
	return nil, usageError{fmt.Errorf("MAILHOOK_STORE=%q: %s: %w", cfg.Store, hint, err)}
}

// retryCheck reports whether a failed start-up check of the S3 store is
// worth repeating: an answer that is neither a configuration problem nor
// an outage (a conflict with another replica's probe).
func retryCheck(err error) bool {
	for _, final := range []error{s3store.ErrNoBucket, s3store.ErrAccess, s3store.ErrWrongRegion,
		s3store.ErrNoConditionalWrites, s3store.ErrIfMatchCreates, s3store.ErrDeleteIgnoresIfMatch,
		store.ErrUnavailable, context.Canceled, context.DeadlineExceeded} { // the SDK has retried those already
		if errors.Is(err, final) {
			return false
		}
	}
	return true
}
