package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Region is the region versitygw answers for.
const Region = "us-east-1"

// module is the versitygw module, run as `go tool versitygw` by go.mod.
const module = "github.com/versity/versitygw"

// The environment that points the tests at an S3-compatible server of the
// developer's choosing instead of versitygw (see External).
const (
	EnvEndpoint  = "MAILHOOK_TEST_S3_ENDPOINT"
	EnvAccessKey = "MAILHOOK_TEST_S3_ACCESS_KEY"
	EnvSecretKey = "MAILHOOK_TEST_S3_SECRET_KEY"
)

// Server is a running versitygw with one bucket, or the external server
// named by EnvEndpoint.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Bucket    string // created empty by Start
	AccessKey string
	SecretKey string
	Dir       string // the posix backend's root; one subdirectory per bucket; "" for an external server

	t        testing.TB
	external bool
	bin      string
	addr     string
	sidecar  string // metadata directory when Dir lacks xattrs, else ""

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *syncBuffer
}

// Start builds versitygw if needed, runs it on a free loopback port over
// a fresh temporary directory, creates the bucket, and stops the server
// when the test ends. It fails the test if any of that goes wrong.
//
// With EnvEndpoint set it starts nothing: it creates a bucket with a fresh
// name on that server instead, and empties and deletes it when the test
// ends (see External).
func Start(t testing.TB) *Server {
	t.Helper()
	if endpoint := os.Getenv(EnvEndpoint); endpoint != "" {
		return startExternal(t, endpoint)
	}
	bin, err := binary(t)
	if err != nil {
		t.Fatalf("s3test: cannot build versitygw: %v", err)
	}
	root := t.TempDir()
	s := &Server{
		Bucket:    "mailhook-test",
		AccessKey: "mailhook-test-key",
		SecretKey: randomHex(20),
		Dir:       filepath.Join(root, "data"),
		t:         t,
		bin:       bin,
		out:       &syncBuffer{},
	}
	if err := os.Mkdir(s.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if !xattrsWork(s.Dir) {
		s.sidecar = filepath.Join(root, "meta")
		if err := os.Mkdir(s.sidecar, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() && s.out.Len() > 0 {
			t.Logf("versitygw output:\n%s", s.out.String())
		}
	})
	var errs []error
	for range 3 {
		addr, err := freeAddr()
		if err != nil {
			t.Fatalf("s3test: %v", err)
		}
		if err = s.start(addr); err == nil {
			break
		}
		errs = append(errs, err)
	}
	if s.cmd == nil {
		t.Fatalf("s3test: versitygw did not start: %v\noutput:\n%s", errors.Join(errs...), s.out.String())
	}
	s.CreateBucket(t, s.Bucket)
	return s
}

// Env is the mailhook configuration that points at this server.
func (s *Server) Env() map[string]string {
	return map[string]string{
		"MAILHOOK_STORE":         "s3://" + s.Bucket,
		"MAILHOOK_S3_ENDPOINT":   s.Endpoint,
		"MAILHOOK_S3_PATH_STYLE": "true",
		"MAILHOOK_S3_REGION":     Region,
		"AWS_ACCESS_KEY_ID":      s.AccessKey,
		"AWS_SECRET_ACCESS_KEY":  s.SecretKey,
	}
}

// Client is an SDK client for the server, for checks behind the store's
// back (listing multipart uploads, creating buckets).
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint),
		Region:       Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		// versitygw accepts the SDK's default checksums, but keep the
		// harness as plain as what the store sends.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// CreateBucket creates an empty bucket named name.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("s3test: create bucket %s: %v", name, err)
	}
}

var bucketSeq atomic.Int64

// NewBucket creates an empty bucket with a fresh name and returns it.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	if s.external {
		return s.newExternalBucket(t)
	}
	name := fmt.Sprintf("mailhook-test-%d", bucketSeq.Add(1))
	s.CreateBucket(t, name)
	return name
}

// Stop kills the server (by its PID) and waits for it to exit. Data in
// Dir stays. Stopping a stopped server does nothing. An external server
// cannot be stopped: the test is skipped from there on.
func (s *Server) Stop() {
	if s.external {
		s.t.Skipf("s3test: the rest of this test stops the S3 server; %s (%s) is not ours to stop", s.Endpoint, EnvEndpoint)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Restart stops the server if it runs and starts it again on the same
// address over the same directory, so clients that kept the endpoint see
// the same data again.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	for range 10 {
		if err = s.start(s.addr); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond) // the port may linger
	}
	s.t.Fatalf("s3test: versitygw did not restart on %s: %v\noutput:\n%s", s.addr, err, s.out.String())
}

// start runs versitygw on addr and waits until it answers.
func (s *Server) start(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	args := []string{
		"--access", s.AccessKey,
		"--secret", s.SecretKey,
		"--region", Region,
		"--port", addr,
		"--health", "/_health",
		"--quiet",
		"posix",
	}
	if s.sidecar != "" {
		args = append(args, "--sidecar", s.sidecar)
	}
	args = append(args, s.Dir)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout = s.out
	cmd.Stderr = s.out
	detach(cmd)
	fmt.Fprintf(s.out, "--- %s %s\n", filepath.Base(s.bin), strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()

	endpoint := "http://" + addr
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("versitygw exited: %v", waitErr)
		default:
		}
		resp, err := client.Get(endpoint + "/_health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("versitygw on %s not healthy after 30s (last: %v)", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.cmd, s.exited, s.addr, s.Endpoint = cmd, exited, addr, endpoint
	return nil
}

// freeAddr finds a loopback port nobody listens on.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("no free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

var build struct {
	once sync.Once
	path string
	err  error
}

// binary returns the path of a versitygw executable, building it at most
// once per test process and once per machine.
func binary(t testing.TB) (string, error) {
	build.once.Do(func() {
		if p := os.Getenv("MAILHOOK_VERSITYGW"); p != "" {
			build.path = p
			return
		}
		build.path, build.err = buildBinary(t)
	})
	return build.path, build.err
}

func buildBinary(t testing.TB) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("go command not found (or set MAILHOOK_VERSITYGW to a versitygw binary): %w", err)
	}
	gomod, err := goCmd(goBin, "", "env", "GOMOD")
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("cannot find go.mod: %q %v", gomod, err)
	}
	root := filepath.Dir(gomod)
	version, err := goCmd(goBin, root, "list", "-m", "-f", "{{.Version}}", module)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "mailhook")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := fmt.Sprintf("versitygw-%s-%s-%s", version, runtime.GOOS, runtime.GOARCH)
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	path := filepath.Join(dir, name)
	if isExecutable(path) {
		return path, nil
	}
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(path) { // another test binary built it meanwhile
		return path, nil
	}
	t.Logf("s3test: building versitygw %s into %s (once; may take minutes on a cold build cache)", version, path)
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	defer os.Remove(tmp)
	if _, err := goCmd(goBin, root, "build", "-o", tmp, module+"/cmd/versitygw"); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	return path, nil
}

func goCmd(goBin, dir string, args ...string) (string, error) {
	cmd := exec.Command(goBin, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// syncBuffer collects the server's output from two pipes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}
