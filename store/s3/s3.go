package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/mailhook/mailhook/store"
)

var _ store.Store = (*Store)(nil)

// Defaults for the zero values of Config.
const (
	DefaultRegion      = "us-east-1"
	DefaultPartSize    = 8 << 20
	DefaultTimeout     = 30 * time.Second
	DefaultMaxAttempts = 3

	// MinPartSize is S3's smallest part but the last of a multipart upload.
	MinPartSize = 5 << 20
	// maxParts is S3's limit on the parts of one upload.
	maxParts = 10000
	// minThroughput scales the timeout of requests that carry or return a
	// body: a request may take Timeout plus its size at this rate.
	minThroughput = 256 << 10 // bytes per second
	// maxIdleConns is how many connections to the S3 endpoint are kept
	// open between requests. The SDK's default keeps 10, but SMTP sessions
	// and delivery workers (128 by default on S3) write at once: above 10
	// in flight, each request beyond them opened a new connection (and on
	// https a TLS handshake) and closed it after.
	maxIdleConns = 256
)

// defaultHTTPClient is the SDK's client with a short dial timeout (fail
// fast on an unreachable endpoint; the per-request timeout bounds the
// rest) and room for maxIdleConns kept-alive connections.
func defaultHTTPClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
		d.Timeout = 5 * time.Second
	}).WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = maxIdleConns
		tr.MaxIdleConnsPerHost = maxIdleConns
	})
}

// Config says where the objects live. Credentials are not part of it: they
// come from the AWS SDK's default chain (AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared config files, web
// identity, ECS and EC2 instance roles).
type Config struct {
	// Bucket is required.
	Bucket string
	// Prefix, if set, is put in front of every key as "Prefix/key".
	// Leading and trailing slashes are ignored.
	Prefix string
	// Endpoint is the URL of an S3-compatible server
	// ("http://127.0.0.1:7070", "https://<account>.r2.cloudflarestorage.com");
	// empty means AWS.
	Endpoint string
	// Region; empty means the SDK's (AWS_REGION, shared config) or else
	// us-east-1. R2 wants "auto".
	Region string
	// PathStyle addresses the bucket as endpoint/bucket instead of
	// bucket.endpoint; most self-hosted servers need it.
	PathStyle bool

	// HTTPClient replaces the SDK's HTTP client (optional).
	HTTPClient aws.HTTPClient
	// Logger receives warnings such as a multipart upload that could not be
	// aborted, and the SDK's own warnings (optional; default discards).
	Logger *slog.Logger

	// PartSize is both the largest body sent with one PutObject and the
	// part size of multipart uploads (0 = DefaultPartSize; at least
	// MinPartSize). Put holds at most one part in memory.
	PartSize int
	// Timeout bounds each request whose context has no deadline
	// (0 = DefaultTimeout); requests carrying a body get more time in
	// proportion to its size.
	Timeout time.Duration
	// MaxAttempts bounds the SDK's retries of one request
	// (0 = DefaultMaxAttempts).
	MaxAttempts int
}

// Store is a store.Store on one bucket. It is safe for concurrent use by
// many goroutines and many processes (the server orders the writes).
type Store struct {
	client    *s3.Client
	creds     aws.CredentialsProvider
	bucket    string
	prefix    string // "" or "prefix/"
	endpoint  string
	region    string
	partSize  int
	timeout   time.Duration
	log       *slog.Logger
	smallPool sync.Pool // *[]byte of smallBuf bytes
	partPool  sync.Pool // *[]byte of partSize bytes
	// noDeleteIfMatch: the server answered a conditional delete with
	// 501; deletes go without the condition.
	noDeleteIfMatch atomic.Bool
}

// New checks cfg and builds a Store. It makes no request: call Check to
// find out whether the bucket exists and the credentials work.
func New(ctx context.Context, cfg Config) (*Store, error) {
	var errs []error
	if cfg.Bucket == "" {
		errs = append(errs, errors.New("no bucket"))
	} else if strings.ContainsAny(cfg.Bucket, "/ ") {
		errs = append(errs, fmt.Errorf("bucket %q: not a bucket name", cfg.Bucket))
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if err := store.ValidKey(prefix); err != nil {
			errs = append(errs, fmt.Errorf("prefix %q: %w", cfg.Prefix, err))
		}
		prefix += "/"
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("endpoint %q: want http://host[:port] or https://host[:port]", cfg.Endpoint))
		}
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	} else if cfg.PartSize < MinPartSize {
		errs = append(errs, fmt.Errorf("part size %d: below the S3 minimum of %d", cfg.PartSize, MinPartSize))
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("s3: bad configuration: %w", errors.Join(errs...))
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	httpClient := cfg.HTTPClient
	if httpClient == nil {
		httpClient = defaultHTTPClient()
	}

	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithDefaultRegion(DefaultRegion),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.MaxAttempts
				o.MaxBackoff = 2 * time.Second
			})
		}),
		config.WithLogger(slogLogger{log}),
		// See the package comment: no default CRC32 trailers or
		// aws-chunked bodies, which several S3-compatible servers reject.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load AWS configuration: %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	s := &Store{
		client:   client,
		creds:    awsCfg.Credentials,
		bucket:   cfg.Bucket,
		prefix:   prefix,
		endpoint: cfg.Endpoint,
		region:   awsCfg.Region,
		partSize: cfg.PartSize,
		timeout:  cfg.Timeout,
		log:      log.With("store", "s3", "bucket", cfg.Bucket),
	}
	s.smallPool.New = func() any { b := make([]byte, smallBuf); return &b }
	s.partPool.New = func() any { b := make([]byte, s.partSize); return &b }
	return s, nil
}

// String names the store for logs: "s3://bucket/prefix (endpoint)".
func (s *Store) String() string {
	where := s.endpoint
	if where == "" {
		where = "AWS " + s.region
	} else if u, err := url.Parse(where); err == nil {
		u.User = nil // never print credentials embedded in a URL
		where = u.String()
	}
	if s.prefix == "" {
		return fmt.Sprintf("s3://%s (%s)", s.bucket, where)
	}
	return fmt.Sprintf("s3://%s/%s (%s)", s.bucket, strings.TrimSuffix(s.prefix, "/"), where)
}

// Check reports whether the store is usable: credentials are found, the
// endpoint answers, the bucket exists and may be read. It returns nil,
// ErrAccess (no or wrong credentials, access denied), ErrNoBucket,
// ErrWrongRegion or an error wrapping store.ErrUnavailable (endpoint
// unreachable, server failing). Write permission is not checked.
func (s *Store) Check(ctx context.Context) error {
	cctx, cancel := s.withTimeout(ctx, s.timeout)
	defer cancel()
	if _, err := s.creds.Retrieve(cctx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("s3: check: %w", ctx.Err())
		}
		return fmt.Errorf("s3: check: %w: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an IAM role): %s", ErrAccess, err)
	}
	err := s.headBucket(ctx)
	if errors.Is(err, ErrNoBucket) || errors.Is(err, ErrAccess) {
		// A HEAD answer has no body, so only its status tells what went
		// wrong, and some servers say 404 for an unknown access key. A
		// listing names the error.
		lctx, cancel := s.withTimeout(ctx, s.timeout)
		defer cancel()
		_, lerr := s.client.ListObjectsV2(lctx, &s3.ListObjectsV2Input{Bucket: &s.bucket, MaxKeys: aws.Int32(1)})
		if lerr != nil {
			err = translate(ctx, lctx, lerr, opBucket)
		}
	}
	if err != nil {
		return fmt.Errorf("s3: check %s: %w", s, err)
	}
	return nil
}

// Ping checks the bucket answers (HeadBucket), for /readyz.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.headBucket(ctx); err != nil {
		return fmt.Errorf("s3: ping: %w", err)
	}
	return nil
}

func (s *Store) headBucket(ctx context.Context) error {
	cctx, cancel := s.withTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.client.HeadBucket(cctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	if err != nil {
		return translate(ctx, cctx, err, opBucket)
	}
	return nil
}

// Stat describes the object under key (HeadObject).
func (s *Store) Stat(ctx context.Context, key string) (store.Object, error) {
	if err := store.ValidKey(key); err != nil {
		return store.Object{}, fmt.Errorf("s3: stat: %w", err)
	}
	cctx, cancel := s.withTimeout(ctx, s.timeout)
	defer cancel()
	out, err := s.client.HeadObject(cctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil {
		return store.Object{}, fmt.Errorf("s3: stat %s: %w", key, translate(ctx, cctx, err, opRead))
	}
	return store.Object{
		Key:     key,
		Size:    aws.ToInt64(out.ContentLength),
		ETag:    quoteETag(aws.ToString(out.ETag)),
		ModTime: aws.ToTime(out.LastModified),
	}, nil
}

// Get opens the object under key. Reading the body is bounded by a timeout
// scaled to the object's size when ctx has no deadline.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, store.Object, error) {
	if err := store.ValidKey(key); err != nil {
		return nil, store.Object{}, fmt.Errorf("s3: get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, store.Object{}, fmt.Errorf("s3: get %s: %w", key, err)
	}
	// The request context must outlive Get: it is cancelled by Close or
	// by the timer, which gets more time once the size is known.
	cctx, cancel := context.WithCancel(ctx)
	var timer *time.Timer
	if _, ok := ctx.Deadline(); !ok {
		timer = time.AfterFunc(s.timeout, cancel)
	}
	out, err := s.client.GetObject(cctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)})
	if err != nil {
		err = translate(ctx, cctx, err, opRead)
		stop(timer)
		cancel()
		return nil, store.Object{}, fmt.Errorf("s3: get %s: %w", key, err)
	}
	obj := store.Object{
		Key:     key,
		Size:    aws.ToInt64(out.ContentLength),
		ETag:    quoteETag(aws.ToString(out.ETag)),
		ModTime: aws.ToTime(out.LastModified),
	}
	if timer != nil {
		timer.Reset(s.timeout + sizeTime(obj.Size))
	}
	return &body{rc: out.Body, key: key, parent: ctx, ctx: cctx, cancel: cancel, timer: timer}, obj, nil
}

// body is an object being read by a Get caller.
type body struct {
	rc     io.ReadCloser
	key    string
	parent context.Context
	ctx    context.Context
	cancel context.CancelFunc
	timer  *time.Timer
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("s3: get %s: read: %w", b.key, translate(b.parent, b.ctx, err, opRead))
	}
	return n, err
}

func (b *body) Close() error {
	err := b.rc.Close()
	stop(b.timer)
	b.cancel()
	return err
}

func stop(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// Delete removes the object under key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	return s.delete(ctx, key, "")
}

// DeleteIfMatch removes the object under key if its ETag is etag
// (If-Match; store.ConditionalDeleter). A server that ignores the
// condition deletes it whatever its version, as Delete does.
func (s *Store) DeleteIfMatch(ctx context.Context, key, etag string) error {
	return s.delete(ctx, key, etag)
}

// delete is Delete, conditional on the ETag ifMatch unless it is "".
func (s *Store) delete(ctx context.Context, key, ifMatch string) error {
	if err := store.ValidKey(key); err != nil {
		return fmt.Errorf("s3: delete: %w", err)
	}
	cctx, cancel := s.withTimeout(ctx, s.timeout)
	defer cancel()
	in := &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)}
	if ifMatch != "" && !s.noDeleteIfMatch.Load() {
		in.IfMatch = aws.String(ifMatch)
	}
	_, err := s.client.DeleteObject(cctx, in)
	if err != nil {
		err = translate(ctx, cctx, err, opRead)
		if in.IfMatch != nil && errors.Is(err, errors.ErrUnsupported) {
			// A server without conditional deletes (501): delete as
			// before (CheckConditionalWrites warns of it).
			s.noDeleteIfMatch.Store(true)
			return s.delete(ctx, key, "")
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("s3: delete %s: %w", key, err)
	}
	return nil
}

// List yields the objects whose keys start with prefix in lexical order,
// fetching one page of up to 1000 keys (ListObjectsV2) at a time as the
// caller iterates.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[store.Object, error] {
	return s.list(ctx, prefix, "")
}

// ListKeysAfter yields the keys under prefix that sort after after,
// starting the listing there (StartAfter): store.AfterLister.
func (s *Store) ListKeysAfter(ctx context.Context, prefix, after string) iter.Seq2[string, error] {
	return store.Keys(s.list(ctx, prefix, after))
}

// list is List starting after the key after, unless it is "".
func (s *Store) list(ctx context.Context, prefix, after string) iter.Seq2[store.Object, error] {
	return func(yield func(store.Object, error) bool) {
		in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + prefix)}
		if after != "" {
			in.StartAfter = aws.String(s.prefix + after)
		}
		for {
			cctx, cancel := s.withTimeout(ctx, s.timeout)
			out, err := s.client.ListObjectsV2(cctx, in)
			if err != nil {
				err = translate(ctx, cctx, err, opRead)
				cancel()
				yield(store.Object{}, fmt.Errorf("s3: list %q: %w", prefix, err))
				return
			}
			cancel()
			for _, o := range out.Contents {
				key, ok := strings.CutPrefix(aws.ToString(o.Key), s.prefix)
				if !ok || store.ValidKey(key) != nil {
					continue // not ours (such as a directory marker "a/")
				}
				obj := store.Object{
					Key:     key,
					Size:    aws.ToInt64(o.Size),
					ETag:    quoteETag(aws.ToString(o.ETag)),
					ModTime: aws.ToTime(o.LastModified),
				}
				if !yield(obj, nil) {
					return
				}
			}
			if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextContinuationToken) == "" {
				return
			}
			in.ContinuationToken = out.NextContinuationToken
		}
	}
}

// withTimeout gives one request its own deadline when ctx has none.
func (s *Store) withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// sizeTime is the extra time a request moving n bytes may take.
func sizeTime(n int64) time.Duration {
	return time.Duration(n) * time.Second / minThroughput
}

// quoteETag returns etag in its quoted form, whatever the server sent
// (most quote it, a few S3-compatible servers do not in listings).
func quoteETag(etag string) string {
	if etag == "" || strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, `W/"`) {
		return etag
	}
	return `"` + etag + `"`
}

// serverTime is the Date of the response, or now.
func serverTime(md middleware.Metadata) time.Time {
	if r, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response); ok {
		if t, err := http.ParseTime(r.Header.Get("Date")); err == nil {
			return t.UTC()
		}
	}
	return time.Now().UTC().Truncate(time.Second)
}

// slogLogger passes the SDK's log lines to slog.
type slogLogger struct{ log *slog.Logger }

func (l slogLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, "aws sdk: "+fmt.Sprintf(format, v...))
}
