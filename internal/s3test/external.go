package s3test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// External reports whether s is the developer's server named by
// EnvEndpoint rather than a versitygw of the test's own.
//
// Running the S3 tests against another server (MinIO, Ceph RGW, a
// versitygw elsewhere) checks that mailhook works with it:
//
//	MAILHOOK_TEST_S3_ENDPOINT=http://127.0.0.1:9000 \
//	MAILHOOK_TEST_S3_ACCESS_KEY=… MAILHOOK_TEST_S3_SECRET_KEY=… \
//	go test ./store/s3/... ./cmd/mailhook/...
//
// The credentials must be allowed to create and delete buckets: every
// Start and NewBucket creates one with a fresh name ("mailhook-test-"
// and random hex), path-style, in Region, and empties and deletes it when
// its test ends. Tests that stop or restart the server skip at that point.
func (s *Server) External() bool { return s.external }

func startExternal(t testing.TB, endpoint string) *Server {
	t.Helper()
	s := &Server{
		Endpoint:  endpoint,
		AccessKey: os.Getenv(EnvAccessKey),
		SecretKey: os.Getenv(EnvSecretKey),
		t:         t,
		external:  true,
	}
	if s.AccessKey == "" || s.SecretKey == "" {
		t.Fatalf("s3test: %s is set but %s or %s is empty", EnvEndpoint, EnvAccessKey, EnvSecretKey)
	}
	s.Bucket = s.newExternalBucket(t)
	return s
}

// newExternalBucket creates a bucket with a name no earlier run on the
// same server used, removed when t ends.
func (s *Server) newExternalBucket(t testing.TB) string {
	t.Helper()
	name := "mailhook-test-" + randomHex(6)
	s.CreateBucket(t, name)
	t.Cleanup(func() { s.removeBucket(name) })
	return name
}

// removeBucket deletes every object of bucket, any unfinished multipart
// upload, and the bucket. It is best effort: what it cannot remove is
// reported, not failed.
func (s *Server) removeBucket(bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := s.Client()
	objects := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket})
	for objects.HasMorePages() {
		page, err := objects.NextPage(ctx)
		if err != nil {
			s.t.Logf("s3test: list %s for removal: %v", bucket, err)
			return
		}
		for _, o := range page.Contents {
			if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: o.Key}); err != nil {
				s.t.Logf("s3test: delete %s/%s: %v", bucket, aws.ToString(o.Key), err)
			}
		}
	}
	if ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket}); err == nil {
		for _, u := range ups.Uploads {
			_, _ = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: u.Key, UploadId: u.UploadId})
		}
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket}); err != nil {
		s.t.Logf("s3test: delete bucket %s: %v", bucket, err)
	}
}
