package main

import (
	"testing"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/dispatch"
)

// TestDeliveryConcurrencyDefault: MAILHOOK_DELIVERY_CONCURRENCY=0 (its
// default) gives more workers on S3, whose writes each take a round trip,
// than on the filesystem store; a value set is kept.
func TestDeliveryConcurrencyDefault(t *testing.T) {
	for _, tc := range []struct {
		store string
		set   int
		want  int
	}{
		{"file:///var/lib/mailhook", 0, dispatch.DefaultConcurrency},
		{"s3://bucket/prefix", 0, s3DeliveryConcurrency},
		{"file:///var/lib/mailhook", 7, 7},
		{"s3://bucket", 300, 300},
	} {
		if got := deliveryConcurrency(&config.Config{Store: tc.store, DeliveryConcurrency: tc.set}); got != tc.want {
			t.Errorf("store %s, MAILHOOK_DELIVERY_CONCURRENCY=%d: %d workers, want %d", tc.store, tc.set, got, tc.want)
		}
	}
	if s3DeliveryConcurrency <= dispatch.DefaultConcurrency {
		t.Errorf("S3 default %d is not above the filesystem's %d", s3DeliveryConcurrency, dispatch.DefaultConcurrency)
	}
}
