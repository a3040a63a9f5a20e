package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mailhook/mailhook/internal/s3test"
	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/signing"
)

// Replicas: several mailhook processes sharing one store (a versitygw
// bucket, or one directory) deliver each message once at a time, and a
// survivor finishes the deliveries of a replica killed with kill -9.

// replicaEnv is the configuration every replica of a test shares. The
// lease TTL is short so that a takeover happens within the test; the test
// must also pass with the dispatcher's default TTL, used when the binary
// does not know MAILHOOK_LEASE_TTL.
func replicaEnv(base map[string]string, webhook string) map[string]string {
	env := map[string]string{
		"MAILHOOK_WEBHOOK_URL":         webhook,
		"MAILHOOK_WEBHOOK_SECRET":      testSecret,
		"MAILHOOK_RETRY_INITIAL":       "100ms",
		"MAILHOOK_RETRY_MAX_INTERVAL":  "500ms",
		"MAILHOOK_QUEUE_SCAN_INTERVAL": "300ms",
		"MAILHOOK_LEASE_TTL":           "2s",
		"MAILHOOK_LOG_LEVEL":           "info",
	}
	for k, v := range base {
		env[k] = v
	}
	return env
}

// replicaStore is one kind of shared store: how to point a replica at it
// and how to look at its leases behind mailhook's back.
type replicaStore struct {
	name  string
	setup func(t *testing.T) (env map[string]string, dataDir string, leases func() []queue.Lease)
}

var replicaStores = []replicaStore{
	{"s3", func(t *testing.T) (map[string]string, string, func() []queue.Lease) {
		srv := s3test.Start(t)
		return srv.Env(), t.TempDir(), func() []queue.Lease { return s3Leases(t, srv) }
	}},
	{"fs", func(t *testing.T) (map[string]string, string, func() []queue.Lease) {
		dir := t.TempDir()
		return nil, dir, func() []queue.Lease { return fsLeases(t, dir) }
	}},
}

func fsLeases(t *testing.T, dir string) []queue.Lease {
	t.Helper()
	root := filepath.Join(dir, filepath.FromSlash(queue.LeasePrefix))
	ents, err := os.ReadDir(root)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ls []queue.Lease
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(root, e.Name()))
		if err != nil {
			continue // released meanwhile
		}
		var l queue.Lease
		if json.Unmarshal(b, &l) == nil {
			ls = append(ls, l)
		}
	}
	return ls
}

func s3Leases(t *testing.T, srv *s3test.Server) []queue.Lease {
	t.Helper()
	ctx := context.Background()
	out, err := srv.Client().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(srv.Bucket), Prefix: aws.String(queue.LeasePrefix)})
	if err != nil {
		t.Fatalf("list leases: %v", err)
	}
	var ls []queue.Lease
	for _, o := range out.Contents {
		obj, err := srv.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(srv.Bucket), Key: o.Key})
		if err != nil {
			continue // released meanwhile
		}
		b, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		var l queue.Lease
		if err == nil && json.Unmarshal(b, &l) == nil {
			ls = append(ls, l)
		}
	}
	return ls
}

// countingReceiver is a webhook endpoint that counts, per webhook-id, the
// requests, the 2xx answers, and the most requests in flight at once. While
// down it answers 503 after holding each request for hold, so that
// attempts (and their leases) last a while.
type countingReceiver struct {
	t   *testing.T
	srv *httptest.Server
	mu  sync.Mutex

	down     bool
	hold     time.Duration
	requests map[string]int
	accepted map[string]int
	inflight map[string]int
	peak     map[string]int
}

func newCountingReceiver(t *testing.T) *countingReceiver {
	t.Helper()
	r := &countingReceiver{t: t, requests: map[string]int{}, accepted: map[string]int{}, inflight: map[string]int{}, peak: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *countingReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if err := signing.VerifyRequest(testSecret, req.Header, body, time.Now(), 0); err != nil {
		r.t.Errorf("webhook signature does not verify: %v", err)
	}
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	r.requests[id]++
	r.inflight[id]++
	r.peak[id] = max(r.peak[id], r.inflight[id])
	down, hold := r.down, r.hold
	r.mu.Unlock()
	code := http.StatusNoContent
	if down {
		time.Sleep(hold)
		code = http.StatusServiceUnavailable
	}
	r.mu.Lock()
	r.inflight[id]--
	if code/100 == 2 {
		r.accepted[id]++
	}
	r.mu.Unlock()
	w.WriteHeader(code)
}

func (r *countingReceiver) URL() string { return r.srv.URL + "/hook" }

func (r *countingReceiver) setDown(down bool, hold time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down, r.hold = down, hold
}

// snapshot copies the counters.
type receiverCounts struct {
	requests, accepted, peak map[string]int
}

func (r *countingReceiver) snapshot() receiverCounts {
	r.mu.Lock()
	defer r.mu.Unlock()
	cp := func(m map[string]int) map[string]int {
		c := make(map[string]int, len(m))
		for k, v := range m {
			c[k] = v
		}
		return c
	}
	return receiverCounts{requests: cp(r.requests), accepted: cp(r.accepted), peak: cp(r.peak)}
}

// waitAccepted waits until every id in ids was answered 2xx.
func (r *countingReceiver) waitAccepted(ids []string, timeout time.Duration) receiverCounts {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c := r.snapshot()
		missing := 0
		for _, id := range ids {
			if c.accepted[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return c
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d of %d messages not delivered after %v", missing, len(ids), timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkNoOverlap fails the test for every id that was in flight twice at
// once: no delivery is sent twice at the same time.
func (c receiverCounts) checkNoOverlap(t *testing.T, ids []string) {
	t.Helper()
	for _, id := range ids {
		if c.peak[id] > 1 {
			t.Errorf("%s: %d requests in flight at once", id, c.peak[id])
		}
	}
}

func sendTo(t *testing.T, srv *server, i int) string {
	t.Helper()
	msg := fmt.Sprintf("From: a@example.org\r\nSubject: replica %d\r\nMessage-ID: <%d@replica.test>\r\n\r\nhello %d\r\n", i, i, i)
	id, err := sendGoSMTP(srv.smtpAddr, "a@example.org", []string{"b@example.com"}, []byte(msg))
	if err != nil {
		t.Fatalf("message %d: %v", i, err)
	}
	return id
}

// Two replicas on one store, 40 messages sent alternately to each: every
// message is delivered exactly once (no crash, so no duplicate either).
func TestReplicaExactlyOnce(t *testing.T) {
	for _, rs := range replicaStores {
		t.Run(rs.name, func(t *testing.T) {
			const n = 40
			base, dir, leases := rs.setup(t)
			rcv := newCountingReceiver(t)
			env := replicaEnv(base, rcv.URL())
			a := startServer(t, dir, env)
			b := startServer(t, dir, env)

			start := time.Now()
			ids := make([]string, n)
			for i := range ids {
				srv := a
				if i%2 == 1 {
					srv = b
				}
				ids[i] = sendTo(t, srv, i)
			}
			rcv.waitAccepted(ids, 60*time.Second)
			took := time.Since(start)
			// Give a duplicate the time to show up: several rescans.
			time.Sleep(2 * time.Second)
			c := rcv.snapshot()
			c.checkNoOverlap(t, ids)
			dups := 0
			for _, id := range ids {
				if c.accepted[id] != 1 || c.requests[id] != 1 {
					t.Errorf("%s: %d requests, %d delivered; want exactly 1", id, c.requests[id], c.accepted[id])
				}
				dups += c.accepted[id] - 1
			}
			if len(c.requests) != n {
				t.Errorf("receiver saw %d webhook-ids, want %d", len(c.requests), n)
			}
			a.stop()
			b.stop()
			if ls := leases(); len(ls) != 0 {
				t.Errorf("%d leases left after both replicas stopped: %+v", len(ls), ls)
			}
			t.Logf("%s: 2 replicas, acknowledged %d, delivered %d distinct, duplicates %d, lost 0, in %v",
				rs.name, n, len(c.accepted), dups, took.Round(time.Millisecond))
		})
	}
}

// The receiver is down; replica A accepts 20 messages, both replicas keep
// trying them, and A is killed with kill -9 while it holds leases. The
// receiver comes back and the survivor B delivers all 20.
func TestReplicaTakeover(t *testing.T) {
	for _, rs := range replicaStores {
		t.Run(rs.name, func(t *testing.T) {
			const n = 20
			base, dir, leases := rs.setup(t)
			rcv := newCountingReceiver(t)
			rcv.setDown(true, 300*time.Millisecond)
			env := replicaEnv(base, rcv.URL())
			a := startServer(t, dir, env)
			b := startServer(t, dir, env)

			ids := make([]string, n)
			for i := range ids {
				ids[i] = sendTo(t, a, i)
			}
			// Every message attempted at least once, and A in the middle
			// of some attempts.
			pidA := a.cmd.Process.Pid
			var heldByA int
			deadline := time.Now().Add(60 * time.Second)
			for {
				c := rcv.snapshot()
				tried := 0
				for _, id := range ids {
					if c.requests[id] > 0 {
						tried++
					}
				}
				heldByA = 0
				for _, l := range leases() {
					if l.PID == pidA && l.ExpiresAt.After(time.Now()) {
						heldByA++
					}
				}
				if tried == n && heldByA > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after 60s: %d of %d messages attempted, %d leases held by replica A", tried, n, heldByA)
				}
				time.Sleep(5 * time.Millisecond)
			}
			a.kill9()
			before := rcv.snapshot()
			rcv.setDown(false, 0)
			start := time.Now()

			c := rcv.waitAccepted(ids, 90*time.Second)
			took := time.Since(start)
			c.checkNoOverlap(t, ids)
			delivered, dups, attempts := 0, 0, 0
			for _, id := range ids {
				if c.accepted[id] > 0 {
					delivered++
				}
				dups += max(c.accepted[id]-1, 0)
				attempts += c.requests[id]
			}
			if !b.logged(`"msg":"lease taken over"`, 5*time.Second) {
				t.Errorf("the survivor's logs do not show a lease taken over")
			}
			b.stop()
			if ls := leases(); len(ls) != 0 {
				t.Errorf("%d leases left after the survivor stopped: %+v", len(ls), ls)
			}
			t.Logf("%s: kill -9 of replica A with %d deliveries pending (%d leased by A, %d attempts made while the receiver was down); "+
				"survivor B: acknowledged %d, delivered %d, lost %d, duplicates %d, %d requests in all; finished %v after the receiver came back",
				rs.name, n, heldByA, total(before.requests), n, delivered, n-delivered, dups, attempts, took.Round(time.Millisecond))
		})
	}
}

func total(m map[string]int) int {
	s := 0
	for _, v := range m {
		s += v
	}
	return s
}
