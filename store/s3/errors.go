package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/mailhook/mailhook/store"
)

// Errors of this backend beyond the store's. Each of them also matches
// store.ErrUnavailable, so a caller that only knows the store contract
// answers 451 and retries later, while start-up can tell the operator
// what to fix.
var (
	// ErrNoBucket: the bucket does not exist (check MAILHOOK_STORE and
	// MAILHOOK_S3_ENDPOINT).
	ErrNoBucket error = &unavailable{"s3: bucket does not exist"}
	// ErrAccess: no credentials, wrong credentials, a skewed clock, or the
	// credentials may not use the bucket (check the AWS credentials and
	// the bucket policy).
	ErrAccess error = &unavailable{"s3: access denied"}
	// ErrWrongRegion: the bucket lives in another region than the one
	// configured (check MAILHOOK_S3_REGION).
	ErrWrongRegion error = &unavailable{"s3: wrong region"}
)

// unavailable is a sentinel that is also store.ErrUnavailable.
type unavailable struct{ msg string }

func (e *unavailable) Error() string        { return e.msg }
func (e *unavailable) Is(target error) bool { return target == store.ErrUnavailable }

// op says how to read a failure, which depends on the request.
type op int

const (
	opRead      op = iota // object reads, listings, deletes
	opBucket              // HeadBucket: 404 is the bucket
	opPut                 // unconditional writes
	opPutCreate           // If-None-Match: *
	opPutCAS              // If-Match: a missing key is a lost race
)

// throttling lists error codes S3 and its look-alikes use for "slow down".
var throttling = map[string]bool{
	"SlowDown": true, "Throttling": true, "ThrottlingException": true,
	"RequestLimitExceeded": true, "TooManyRequests": true, "RequestThrottled": true,
	"ServiceUnavailable": true, "InternalError": true, "RequestTimeout": true,
	"OperationAborted": true,
}

// denied lists error codes about credentials and permissions.
var denied = map[string]bool{
	"AccessDenied": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true,
	"ExpiredToken": true, "InvalidToken": true, "TokenRefreshRequired": true,
	"RequestTimeTooSkewed": true, "AllAccessDisabled": true, "AccountProblem": true,
	"Forbidden": true, "InvalidSecurity": true, "MissingSecurityHeader": true,
	"XAdminUserNotFound": true, // versitygw: unknown access key
}

// translate turns an SDK failure of a request made with ctx (derived from
// the caller's parent) into an error built on the store's sentinels. The
// result never wraps an SDK or smithy type.
func translate(parent, ctx context.Context, err error, o op) error {
	if perr := parent.Err(); perr != nil {
		return perr // the caller's own cancellation or deadline
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: no answer in time (%v)", store.ErrUnavailable, ctx.Err())
	}
	var (
		status int
		code   string
		detail string
		region string
	)
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
		if re.Response != nil {
			region = re.Response.Header.Get("X-Amz-Bucket-Region")
		}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && status != 0 {
		code = ae.ErrorCode()
		detail = fmt.Sprintf("%s (HTTP %d", code, status)
		if msg := ae.ErrorMessage(); msg != "" {
			detail = fmt.Sprintf("%s: %s (HTTP %d", code, msg, status)
		}
		if re != nil && re.RequestID != "" {
			detail += ", request id " + re.RequestID
		}
		detail += ")"
	} else {
		detail = transportDetail(err)
	}

	switch {
	case denied[code]:
		// Before the 404s: versitygw answers an unknown access key with
		// 404 XAdminUserNotFound.
		return fmt.Errorf("%w: %s", ErrAccess, detail)
	case o == opBucket && (status == 404 || code == "NoSuchBucket"):
		return fmt.Errorf("%w: %s", ErrNoBucket, detail)
	case code == "NoSuchBucket":
		return fmt.Errorf("%w: %s", ErrNoBucket, detail)
	case status == 412 || code == "PreconditionFailed" || code == "ConditionalRequestConflict":
		return fmt.Errorf("%w: %s", store.ErrPrecondition, detail)
	case status == 409 && (o == opPutCreate || o == opPutCAS):
		// S3: "409 ConditionalRequestConflict: a conflicting operation
		// occurred during the conditional write"; it lost the race.
		return fmt.Errorf("%w: %s", store.ErrPrecondition, detail)
	case status == 404 && o == opPutCAS:
		// If-Match on a missing key: S3 answers 404 NoSuchKey.
		return fmt.Errorf("%w: no object to match: %s", store.ErrPrecondition, detail)
	case code == "NoSuchKey" || code == "NotFound" || status == 404:
		return fmt.Errorf("%w: %s", store.ErrNotFound, detail)
	case status == 301 || code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" ||
		code == "IllegalLocationConstraintException" || (status == 400 && region != ""):
		if region != "" {
			return fmt.Errorf("%w: the bucket is in region %q: %s", ErrWrongRegion, region, detail)
		}
		return fmt.Errorf("%w: %s", ErrWrongRegion, detail)
	case status == 403:
		return fmt.Errorf("%w: %s", ErrAccess, detail)
	case status == 501:
		// For instance a server without conditional writes.
		return fmt.Errorf("%w: the server does not implement this request: %s", errors.ErrUnsupported, detail)
	case status == 0 || status >= 500 || status == 429 || throttling[code]:
		return fmt.Errorf("%w: %s", store.ErrUnavailable, detail)
	default:
		return errors.New(detail)
	}
}

// transportDetail describes a failure without an HTTP answer: the
// network error if there is one, else the SDK's text.
func transportDetail(err error) string {
	var ne *net.OpError
	if errors.As(err, &ne) {
		return ne.Error()
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return de.Error()
	}
	s := err.Error()
	// "operation error S3: PutObject, https response error ...": keep the tail.
	if i := strings.LastIndex(s, ", "); i >= 0 && strings.HasPrefix(s, "operation error") {
		return s[i+2:]
	}
	return s
}
