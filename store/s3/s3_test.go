package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mailhook/mailhook/internal/s3test"
	"github.com/mailhook/mailhook/store"
	"github.com/mailhook/mailhook/store/storetest"
)

// useServer points the SDK's default credential chain at srv only: the
// developer's own AWS files, profile and instance role are ignored.
func useServer(t testing.TB, srv *s3test.Server) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent/mailhook/aws-config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/mailhook/aws-credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// newStore makes a Store on srv; edit adjusts the Config.
func newStore(t testing.TB, srv *s3test.Server, edit func(*Config)) *Store {
	t.Helper()
	cfg := Config{
		Bucket:    srv.Bucket,
		Endpoint:  srv.Endpoint,
		Region:    s3test.Region,
		PathStyle: true,
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestContract(t *testing.T) {
	srv := s3test.Start(t)
	useServer(t, srv)
	t.Run("prefix", func(t *testing.T) {
		var n atomic.Int64
		storetest.Run(t, func(t *testing.T) store.Store {
			return newStore(t, srv, func(c *Config) { c.Prefix = fmt.Sprintf("contract/%d", n.Add(1)) })
		})
	})
	t.Run("bucket", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store {
			bucket := srv.NewBucket(t)
			return newStore(t, srv, func(c *Config) { c.Bucket = bucket })
		})
	})
}

// pattern is n deterministic bytes.
func pattern(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// onlyReader hides every method but Read (no size, no seeking).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

var errBody = errors.New("body failed")

// failingReader fails after passing on the first bytes of r.
type failingReader struct {
	r     io.Reader
	after int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errBody
	}
	n, err := f.r.Read(p[:min(len(p), f.after)])
	f.after -= n
	return n, err
}

func uploads(t *testing.T, srv *s3test.Server, bucket string) int {
	t.Helper()
	out, err := srv.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: &bucket})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	return len(out.Uploads)
}

func readAll(t *testing.T, s store.Store, key string) ([]byte, store.Object) {
	t.Helper()
	rc, obj, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%s): read: %v", key, err)
	}
	return b, obj
}

func TestMultipart(t *testing.T) {
	srv := s3test.Start(t)
	useServer(t, srv)
	s := newStore(t, srv, func(c *Config) { c.PartSize = MinPartSize; c.Prefix = "mp" })
	ctx := t.Context()
	body := pattern(20_000_000) // four parts of 5 MiB and a short one

	for _, size := range []int64{-1, int64(len(body))} {
		key := fmt.Sprintf("big/%d.eml", size)
		put, err := s.Put(ctx, key, onlyReader{bytes.NewReader(body)}, store.PutOptions{Size: size, ContentType: "message/rfc822"})
		if err != nil {
			t.Fatalf("Put Size=%d: %v", size, err)
		}
		if put.Size != int64(len(body)) || !strings.HasSuffix(put.ETag, `-4"`) {
			t.Errorf("Put = %+v, want size %d and a multipart ETag of 4 parts", put, len(body))
		}
		got, obj := readAll(t, s, key)
		if !bytes.Equal(got, body) {
			t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(body))
		}
		st, err := s.Stat(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if obj.ETag != put.ETag || st.ETag != put.ETag || st.Size != put.Size {
			t.Errorf("ETags: put %s, get %s, stat %s", put.ETag, obj.ETag, st.ETag)
		}
		for o, err := range s.List(ctx, key) {
			if err != nil || o.ETag != put.ETag || o.Size != put.Size {
				t.Errorf("List = %+v, %v; want %+v", o, err, put)
			}
		}
		head, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: &srv.Bucket, Key: aws.String("mp/" + key)})
		if err != nil {
			t.Fatal(err)
		}
		if ct := aws.ToString(head.ContentType); ct != "message/rfc822" {
			t.Errorf("Content-Type = %q, want message/rfc822", ct)
		}
	}

	// Conditional writes go through CompleteMultipartUpload too.
	first, err := s.Put(ctx, "big/once", bytes.NewReader(body), store.PutOptions{IfNoneMatch: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "big/once", bytes.NewReader(body), store.PutOptions{IfNoneMatch: true}); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("second multipart create: %v, want ErrPrecondition", err)
	}
	second, err := s.Put(ctx, "big/once", bytes.NewReader(body[1:]), store.PutOptions{IfMatch: first.ETag})
	if err != nil {
		t.Fatalf("multipart CAS: %v", err)
	}
	if _, err := s.Put(ctx, "big/once", bytes.NewReader(body), store.PutOptions{IfMatch: first.ETag}); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("stale multipart CAS: %v, want ErrPrecondition", err)
	}
	if st, _ := s.Stat(ctx, "big/once"); st.ETag != second.ETag || st.Size != int64(len(body)-1) {
		t.Errorf("after stale CAS: %+v, want %+v", st, second)
	}
	if n := uploads(t, srv, srv.Bucket); n != 0 {
		t.Errorf("%d multipart uploads left after lost races, want 0", n)
	}
}

// TestPartBoundary: bodies around the part size take the right path and
// come back whole.
func TestPartBoundary(t *testing.T) {
	srv := s3test.Start(t)
	useServer(t, srv)
	s := newStore(t, srv, func(c *Config) { c.PartSize = MinPartSize })
	for _, n := range []int{smallBuf - 1, smallBuf, smallBuf + 1, MinPartSize - 1, MinPartSize, MinPartSize + 1, 2 * MinPartSize} {
		body := pattern(n)
		key := fmt.Sprintf("edge/%d", n)
		put, err := s.Put(t.Context(), key, onlyReader{bytes.NewReader(body)}, store.PutOptions{Size: -1})
		if err != nil {
			t.Fatalf("Put %d bytes: %v", n, err)
		}
		if multi := strings.Contains(put.ETag, "-"); multi != (n > MinPartSize) {
			t.Errorf("Put %d bytes: ETag %s, multipart = %v", n, put.ETag, multi)
		}
		if got, _ := readAll(t, s, key); !bytes.Equal(got, body) {
			t.Errorf("Put %d bytes: Get differs", n)
		}
	}
}

func TestMultipartBodyFails(t *testing.T) {
	srv := s3test.Start(t)
	useServer(t, srv)
	s := newStore(t, srv, func(c *Config) { c.PartSize = MinPartSize })
	ctx := t.Context()
	for _, tt := range []struct {
		name string
		body io.Reader
		opts store.PutOptions
		want error
	}{
		{"body fails in part 3", &failingReader{r: bytes.NewReader(pattern(20 << 20)), after: 12 << 20}, store.PutOptions{Size: -1}, errBody},
		{"body shorter than Size", bytes.NewReader(pattern(12 << 20)), store.PutOptions{Size: 13 << 20}, nil},
		{"body longer than Size", bytes.NewReader(pattern(12 << 20)), store.PutOptions{Size: 6 << 20}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Put(ctx, "failed", tt.body, tt.opts)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Put: %v, want an error wrapping %v", err, tt.want)
			}
			if _, err := s.Stat(ctx, "failed"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Stat after failed Put: %v, want ErrNotFound", err)
			}
			if n := uploads(t, srv, srv.Bucket); n != 0 {
				t.Errorf("%d multipart uploads left, want 0 (not aborted)", n)
			}
		})
	}
	// Cancelled mid-upload: aborted with a context of its own.
	cctx, cancel := context.WithCancel(ctx)
	body := &cancelReader{r: bytes.NewReader(pattern(20 << 20)), after: 7 << 20, cancel: cancel}
	if _, err := s.Put(cctx, "cancelled", body, store.PutOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put cancelled mid-upload: %v, want context.Canceled", err)
	}
	if n := uploads(t, srv, srv.Bucket); n != 0 {
		t.Errorf("%d multipart uploads left after cancel, want 0", n)
	}
}

type cancelReader struct {
	r      io.Reader
	after  int
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	if c.after <= 0 {
		c.cancel()
	}
	n, err := c.r.Read(p)
	c.after -= n
	return n, err
}

func TestOutage(t *testing.T) {
	srv := s3test.Start(t)
	useServer(t, srv)
	s := newStore(t, srv, nil)
	ctx := t.Context()
	if _, err := s.Put(ctx, "before", strings.NewReader("before"), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	start := time.Now()
	checks := map[string]func() error{
		"Put": func() error {
			_, err := s.Put(ctx, "during", strings.NewReader("x"), store.PutOptions{})
			return err
		},
		"Put multipart": func() error {
			_, err := s.Put(ctx, "during", bytes.NewReader(pattern(DefaultPartSize+1)), store.PutOptions{})
			return err
		},
		"Get": func() error {
			_, _, err := s.Get(ctx, "before")
			return err
		},
		"Stat": func() error {
			_, err := s.Stat(ctx, "before")
			return err
		},
		"Delete": func() error { return s.Delete(ctx, "before") },
		"List": func() error {
			for _, err := range s.List(ctx, "") {
				return err
			}
			return nil
		},
		"Ping":  func() error { return s.Ping(ctx) },
		"Check": func() error { return s.Check(ctx) },
	}
	for name, fn := range checks {
		err := fn()
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s during outage: %v, want ErrUnavailable", name, err)
		}
		if errors.Is(err, ErrAccess) || errors.Is(err, ErrNoBucket) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s during outage: %v, want only ErrUnavailable", name, err)
		}
		assertNoSDKErrors(t, err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("outage took %v to surface for %d calls", d, len(checks))
	}
	t.Logf("%d calls failed in %v", len(checks), time.Since(start).Round(time.Millisecond))

	srv.Restart()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
	if got, _ := readAll(t, s, "before"); string(got) != "before" {
		t.Errorf("after restart: %q", got)
	}
	if _, err := s.Put(ctx, "after", strings.NewReader("after"), store.PutOptions{}); err != nil {
		t.Errorf("Put after restart: %v", err)
	}
}

// TestOutageDeadline: a server that accepts connections but never answers
// is cut off by the per-request timeout as ErrUnavailable.
func TestOutageTimeout(t *testing.T) {
	srv := s3test.Start(t)
	useServer(t, srv)
	// A listener that accepts and never answers.
	l := listenSilent(t)
	s := newStore(t, srv, func(c *Config) {
		c.Endpoint = "http://" + l
		c.Timeout = 300 * time.Millisecond
		c.MaxAttempts = 1
	})
	start := time.Now()
	_, err := s.Stat(t.Context(), "k")
	if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stat on a silent server: %v, want ErrUnavailable (not the caller's deadline)", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stat took %v", d)
	}
	// The caller's own deadline stays a context error.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := s.Stat(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stat with the caller's deadline: %v, want context.DeadlineExceeded", err)
	}
}

func TestCheck(t *testing.T) {
	srv := s3test.Start(t)
	useServer(t, srv)
	ctx := t.Context()
	if err := newStore(t, srv, nil).Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	tests := []struct {
		name string
		env  map[string]string
		edit func(*Config)
		want error
	}{
		{"missing bucket", nil, func(c *Config) { c.Bucket = "no-such-bucket" }, ErrNoBucket},
		{"wrong secret", map[string]string{"AWS_SECRET_ACCESS_KEY": "wrong"}, nil, ErrAccess},
		{"unknown key", map[string]string{"AWS_ACCESS_KEY_ID": "nobody"}, nil, ErrAccess},
		{"no credentials", map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, nil, ErrAccess},
		{"unreachable", nil, func(c *Config) { c.Endpoint = "http://" + closedAddr(t) }, store.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			err := newStore(t, srv, tt.edit).Check(ctx)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Check: %v, want %v", err, tt.want)
			}
			for _, other := range []error{ErrNoBucket, ErrAccess} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("Check: %v, also %v", err, other)
				}
			}
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("Check: %v does not match store.ErrUnavailable", err)
			}
			if strings.Contains(err.Error(), srv.SecretKey) {
				t.Errorf("Check error shows the secret: %v", err)
			}
			assertNoSDKErrors(t, err)
			t.Logf("%s: %v", tt.name, err)
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := New(t.Context(), Config{Prefix: "a//b", Endpoint: "localhost:9000", PartSize: 1 << 20})
	if err == nil {
		t.Fatal("New accepted a bad Config")
	}
	for _, want := range []string{"no bucket", "prefix", "endpoint", "part size"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New: %v; does not mention %q", err, want)
		}
	}
}

func TestErrors(t *testing.T) {
	srv := s3test.Start(t)
	useServer(t, srv)
	s := newStore(t, srv, func(c *Config) { c.Prefix = "/errs/" })
	ctx := t.Context()
	_, err := s.Stat(ctx, "missing")
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat: %v", err)
	}
	assertNoSDKErrors(t, err)
	_, _, err = s.Get(ctx, "missing")
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get: %v", err)
	}
	assertNoSDKErrors(t, err)
	put, err := s.Put(ctx, "k", strings.NewReader("v"), store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(ctx, "k", strings.NewReader("v"), store.PutOptions{IfNoneMatch: true})
	if !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("Put IfNoneMatch: %v", err)
	}
	assertNoSDKErrors(t, err)
	if !strings.HasPrefix(put.ETag, `"`) || !strings.HasSuffix(put.ETag, `"`) {
		t.Errorf("ETag %s is not quoted", put.ETag)
	}
	// The prefix holds the object; List hides it.
	if _, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: &srv.Bucket, Key: aws.String("errs/k")}); err != nil {
		t.Errorf("object not under the prefix: %v", err)
	}
	if got := s.String(); got != fmt.Sprintf("s3://%s/errs (%s)", srv.Bucket, srv.Endpoint) {
		t.Errorf("String() = %q", got)
	}
}

// assertNoSDKErrors fails if err's chain holds a type of the AWS SDK or
// smithy.
func assertNoSDKErrors(t *testing.T, err error) {
	t.Helper()
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		typ := reflect.TypeOf(err)
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if p := typ.PkgPath(); strings.Contains(p, "aws") || strings.Contains(p, "smithy") {
			t.Errorf("error %q wraps %s.%s", err, p, typ.Name())
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
}

// listenSilent returns the address of a listener that accepts connections
// and never answers.
func listenSilent(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

// closedAddr returns a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestString(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Bucket: "mail", Region: "eu-west-1"}, "s3://mail (AWS eu-west-1)"},
		{Config{Bucket: "mail", Prefix: "/in/", Endpoint: "https://key:secret@r2.example.com"}, "s3://mail/in (https://r2.example.com)"},
	} {
		s, err := New(t.Context(), tt.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestCheckConditionalWrites(t *testing.T) {
	srv := s3test.Start(t)
	useServer(t, srv)
	s := newStore(t, srv, func(c *Config) { c.Prefix = "p" })
	if err := s.CheckConditionalWrites(t.Context()); err != nil {
		t.Fatalf("versitygw: %v", err)
	}
	for obj, err := range s.List(t.Context(), "") {
		t.Errorf("probe left %+v, %v", obj, err)
	}

	// A server that ignores the headers, and one that refuses them.
	for name, conditional := range map[string]int{"ignores": http.StatusOK, "501": http.StatusNotImplemented} {
		fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			if r.Method == http.MethodPut && (r.Header.Get("If-Match") != "" || r.Header.Get("If-None-Match") != "") && conditional != http.StatusOK {
				w.WriteHeader(conditional)
				fmt.Fprint(w, `<Error><Code>NotImplemented</Code><Message>nope</Message></Error>`)
				return
			}
			w.Header().Set("ETag", `"d41d8cd98f00b204e9800998ecf8427e"`)
			if r.Method == http.MethodDelete {
				w.WriteHeader(http.StatusNoContent)
			}
		}))
		t.Cleanup(fake.Close)
		s := newStore(t, srv, func(c *Config) { c.Endpoint = fake.URL; c.MaxAttempts = 1 })
		err := s.CheckConditionalWrites(t.Context())
		if !errors.Is(err, ErrNoConditionalWrites) || errors.Is(err, store.ErrUnavailable) {
			t.Errorf("server that %s: %v, want ErrNoConditionalWrites only", name, err)
		}
		assertNoSDKErrors(t, err)
		t.Logf("%s: %v", name, err)
	}

	// A server whose If-Match creates a missing key, and is right otherwise.
	lax := s3test.StartIfMatchCreates(t, srv.Bucket)
	ls := newStore(t, srv, func(c *Config) { c.Endpoint = lax.Endpoint; c.MaxAttempts = 1 })
	err := ls.CheckConditionalWrites(t.Context())
	// Its deletes ignore If-Match as well.
	if !errors.Is(err, ErrIfMatchCreates) || !errors.Is(err, ErrDeleteIgnoresIfMatch) || errors.Is(err, ErrNoConditionalWrites) || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("server whose If-Match creates: %v, want ErrIfMatchCreates and ErrDeleteIgnoresIfMatch only", err)
	}
	assertNoSDKErrors(t, err)
	if n := lax.Keys(); n != 0 {
		t.Errorf("probe left %d objects on the server whose If-Match creates", n)
	}
}

// TestDefaultClientKeepsConnections: the default HTTP client keeps enough
// connections to the endpoint open for SMTP sessions and the delivery
// workers writing at once (the SDK's own default keeps 10: against MinIO
// that closed 350-440 connections in a 12 s load run, 76 with 256).
func TestDefaultClientKeepsConnections(t *testing.T) {
	tr := defaultHTTPClient().GetTransport()
	if tr.MaxIdleConnsPerHost < 160 || tr.MaxIdleConns < tr.MaxIdleConnsPerHost {
		t.Errorf("idle connections kept: %d per host, %d in all; want at least 160 (32 sessions + 128 workers) per host", tr.MaxIdleConnsPerHost, tr.MaxIdleConns)
	}
	if d := defaultHTTPClient().GetDialer(); d.Timeout != 5*time.Second {
		t.Errorf("dial timeout %v", d.Timeout)
	}
}
