package s3test

import (
	"crypto/md5"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// IfMatchCreates is an HTTP server with one fault of a real one: MinIO
// releases before the fix of minio/minio#21526 enforce If-None-Match and
// If-Match on objects that exist, but a PutObject with If-Match on a key
// that does not exist creates it. No server the tests can run has that
// fault any more, so this stands in for it, for the start-up probe only:
// it answers HeadBucket, PutObject, HeadObject and DeleteObject, keeps
// objects in memory and checks no signature. It is not an S3 server.
type IfMatchCreates struct {
	Endpoint string // http://127.0.0.1:PORT, path-style
	Bucket   string

	mu      sync.Mutex
	objects map[string]string // key → quoted ETag
}

// StartIfMatchCreates starts an IfMatchCreates serving bucket, stopped
// when t ends.
func StartIfMatchCreates(t testing.TB, bucket string) *IfMatchCreates {
	t.Helper()
	f := &IfMatchCreates{Bucket: bucket, objects: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.Endpoint = srv.URL
	return f
}

// Keys is the number of objects stored.
func (f *IfMatchCreates) Keys() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.objects)
}

func (f *IfMatchCreates) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if bucket != f.Bucket {
		s3Error(w, http.StatusNotFound, "NoSuchBucket")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	etag, exists := f.objects[key]
	switch {
	case key == "" && r.Method == http.MethodHead:
		w.WriteHeader(http.StatusOK)
	case key == "":
		s3Error(w, http.StatusNotImplemented, "NotImplemented")
	case r.Method == http.MethodPut:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			s3Error(w, http.StatusBadRequest, "IncompleteBody")
			return
		}
		inm, im := r.Header.Get("If-None-Match"), r.Header.Get("If-Match")
		if (inm == "*" && exists) || (im != "" && exists && im != etag) {
			s3Error(w, http.StatusPreconditionFailed, "PreconditionFailed")
			return
		}
		// The fault: If-Match on a missing key is not checked at all.
		sum := md5.Sum(body)
		etag = `"` + hex.EncodeToString(sum[:]) + `"`
		f.objects[key] = etag
		w.Header().Set("ETag", etag)
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodHead && exists:
		w.Header().Set("ETag", etag)
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodHead:
		w.WriteHeader(http.StatusNotFound)
	case r.Method == http.MethodDelete: // If-Match ignored too
		delete(f.objects, key)
		w.WriteHeader(http.StatusNoContent)
	default:
		s3Error(w, http.StatusNotImplemented, "NotImplemented")
	}
}

func s3Error(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, "<Error><Code>"+code+"</Code><Message>"+code+"</Message></Error>")
}
