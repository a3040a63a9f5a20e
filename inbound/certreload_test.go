package inbound

import (
	"bytes"
	"crypto/tls"
	"os"
	"testing"
	"time"
)

func TestCertReloader(t *testing.T) {
	dir := t.TempDir()
	certA, certFile, keyFile := selfSigned(t, dir)
	r, err := NewCertReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	r.every = 0
	got, _ := r.GetCertificate(nil)
	if !bytes.Equal(got.Certificate[0], certA.Certificate[0]) {
		t.Fatal("not certificate A")
	}
	// A broken write keeps the old certificate.
	if err := os.WriteFile(certFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, _ = r.GetCertificate(nil)
	if !bytes.Equal(got.Certificate[0], certA.Certificate[0]) || r.Err() == nil {
		t.Fatalf("broken file: err %v", r.Err())
	}
	// A renewed pair is picked up.
	certB, _, _ := selfSigned(t, dir)
	future := time.Now().Add(time.Minute)
	_ = os.Chtimes(certFile, future, future)
	got, _ = r.GetCertificate(nil)
	if !bytes.Equal(got.Certificate[0], certB.Certificate[0]) || r.Err() != nil {
		t.Fatalf("renewed certificate not loaded: %v", r.Err())
	}
	// And it serves STARTTLS.
	ts := startServer(t, Config{TLSConfig: &tls.Config{GetCertificate: r.GetCertificate}}, nil)
	c, cr := dialBanner(t, ts.addr)
	playSteps(t, c, cr, []step{ehlo, {send: "STARTTLS", code: 220, enh: "2.0.0"}})
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tc.ConnectionState().PeerCertificates[0].Raw, certB.Certificate[0]) {
		t.Fatal("served the wrong certificate")
	}
	if _, err := NewCertReloader(certFile+".missing", keyFile); err == nil {
		t.Fatal("missing file accepted")
	}
}
