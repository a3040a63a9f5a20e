package inbound

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// CertReloader serves a TLS certificate from a pair of PEM files and
// reloads it when either file changes (size or modification time), so a
// renewed certificate is picked up without a restart. Use its
// GetCertificate in the tls.Config given as Config.TLSConfig.
type CertReloader struct {
	certFile, keyFile string
	// every is how often the files are looked at, at most.
	every time.Duration

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]fileStamp
	checked time.Time
	lastErr error
}

type fileStamp struct {
	size int64
	mod  time.Time
}

// NewCertReloader loads the pair once; it fails if that fails.
func NewCertReloader(certFile, keyFile string) (*CertReloader, error) {
	r := &CertReloader{certFile: certFile, keyFile: keyFile, every: time.Second}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func stampOf(name string) (fileStamp, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.Size(), fi.ModTime()}, nil
}

// load reads the files; on failure the previous certificate stays.
func (r *CertReloader) load() error {
	cs, err1 := stampOf(r.certFile)
	ks, err2 := stampOf(r.keyFile)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("inbound: stat certificate files: %v %v", err1, err2)
	}
	if r.cert != nil && cs == r.stamp[0] && ks == r.stamp[1] {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("inbound: load certificate: %w", err)
	}
	r.cert, r.stamp = &cert, [2]fileStamp{cs, ks}
	return nil
}

// GetCertificate implements tls.Config.GetCertificate. A change that
// cannot be loaded (a half-written file, a key that does not match) keeps
// the previous certificate in use; the error is available from Err.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= r.every {
		r.checked = now
		r.lastErr = r.load()
	}
	return r.cert, nil
}

// Err returns the error of the last reload attempt, nil if it succeeded.
func (r *CertReloader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}
