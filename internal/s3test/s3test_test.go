package s3test

import (
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestStartRestart(t *testing.T) {
	s := Start(t)
	env := s.Env()
	for k, want := range map[string]string{
		"MAILHOOK_STORE":         "s3://" + s.Bucket,
		"MAILHOOK_S3_ENDPOINT":   s.Endpoint,
		"MAILHOOK_S3_PATH_STYLE": "true",
		"AWS_SECRET_ACCESS_KEY":  s.SecretKey,
	} {
		if env[k] != want {
			t.Errorf("Env()[%s] = %q, want %q", k, env[k], want)
		}
	}
	if !strings.HasPrefix(s.Endpoint, "http://127.0.0.1:") {
		t.Errorf("Endpoint %q is not on loopback", s.Endpoint)
	}
	c := s.Client()
	ctx := t.Context()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.Bucket, Key: aws.String("k"), Body: strings.NewReader("kept")}); err != nil {
		t.Fatal(err)
	}
	endpoint := s.Endpoint
	s.Stop()
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.Bucket}); err == nil {
		t.Fatal("HeadBucket succeeded on a stopped server")
	}
	s.Stop() // twice is fine
	s.Restart()
	if s.Endpoint != endpoint {
		t.Errorf("Restart moved from %s to %s", endpoint, s.Endpoint)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.Bucket, Key: aws.String("k")})
	if err != nil {
		t.Fatalf("after Restart: %v", err)
	}
	defer out.Body.Close()
	if b, _ := io.ReadAll(out.Body); string(b) != "kept" {
		t.Errorf("after Restart: %q, want kept", b)
	}
	if name := s.NewBucket(t); name == s.Bucket {
		t.Errorf("NewBucket reused %s", name)
	}
}

// With MAILHOOK_TEST_S3_ENDPOINT set, Start uses that server: a bucket of
// its own, emptied and deleted when the test ends; Stop skips the rest of
// the test instead of stopping a server that is not the test's.
func TestExternal(t *testing.T) {
	host := Start(t)
	if host.External() {
		t.Skip("already running against an external server")
	}
	t.Setenv(EnvEndpoint, host.Endpoint)
	t.Setenv(EnvAccessKey, host.AccessKey)
	t.Setenv(EnvSecretKey, host.SecretKey)

	var bucket, second string
	t.Run("inner", func(t *testing.T) {
		s := Start(t)
		if !s.External() || s.Endpoint != host.Endpoint || s.Dir != "" {
			t.Fatalf("Start with %s = %+v, want the external server", EnvEndpoint, s)
		}
		bucket, second = s.Bucket, s.NewBucket(t)
		for _, b := range []string{bucket, second} {
			if _, err := s.Client().PutObject(t.Context(), &s3.PutObjectInput{
				Bucket: aws.String(b), Key: aws.String("k/v"), Body: strings.NewReader("x"),
			}); err != nil {
				t.Fatalf("put into %s: %v", b, err)
			}
		}
		s.Stop()
		t.Error("Stop of an external server returned instead of skipping")
	})
	if bucket == "" || bucket == second || !strings.HasPrefix(bucket, "mailhook-test-") {
		t.Fatalf("buckets %q and %q: want two fresh names", bucket, second)
	}
	for _, b := range []string{bucket, second} {
		if _, err := host.Client().HeadBucket(t.Context(), &s3.HeadBucketInput{Bucket: aws.String(b)}); err == nil {
			t.Errorf("bucket %s still exists after its test ended", b)
		}
	}
	if _, err := host.Client().HeadBucket(t.Context(), &s3.HeadBucketInput{Bucket: aws.String(host.Bucket)}); err != nil {
		t.Errorf("the host server is unusable after the external test: %v", err)
	}
}
