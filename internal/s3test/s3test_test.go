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
