package dispatch

import (
	crand "crypto/rand"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"os"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/mailhook/mailhook/queue"
)

// Config tunes a Dispatcher. Zero fields take the defaults below.
type Config struct {
	// RetryInitial is the base delay after the first failed attempt (10s).
	RetryInitial time.Duration
	// RetryMultiplier grows the base delay per attempt (2).
	RetryMultiplier float64
	// RetryJitter is the randomization factor: the delay is drawn from
	// base·[1-RetryJitter, 1+RetryJitter] (0.5). Negative means none.
	RetryJitter float64
	// RetryMaxInterval caps the base delay and any Retry-After (1h).
	RetryMaxInterval time.Duration
	// RetryMaxElapsed is the retry window, counted from reception (or the
	// last replay); a retry that would fall outside it fails the delivery
	// instead (72h).
	RetryMaxElapsed time.Duration
	// AttemptTimeout bounds one HTTP attempt, response included (30s).
	AttemptTimeout time.Duration
	// Concurrency is the number of workers (32): deliveries worked on at
	// once, from the request to the recording of its outcome.
	Concurrency int
	// PerEndpointConcurrency bounds the requests in flight per endpoint
	// URL (16); a delivery holds its slot until the receiver has answered.
	PerEndpointConcurrency int
	// RescanInterval is how often pending records are listed again from
	// the store, to pick up those written by other processes or missed
	// notifications (30s).
	RescanInterval time.Duration
	// LeaseTTL is how long a replica's lease on a delivery lasts without
	// renewal (15s). The lease is renewed every LeaseTTL/3 while an attempt
	// runs; a replica that dies has its deliveries taken over by the others
	// once its leases have stood unchanged for LeaseTTL (see lease.go).
	LeaseTTL time.Duration
	// ReplicaID names this dispatcher in the leases it writes. It must be
	// unique among the processes sharing a store, and new in every
	// process: a process restarted is another replica, which must not
	// take its predecessor's claims for its own. Default: 16 random hex
	// digits.
	ReplicaID string
	// UserAgent is sent on every request ("mailhook/dev"; the binary sets
	// "mailhook/<version>").
	UserAgent string
	// HTTPClient sends the requests. Default: a keep-alive transport tuned
	// for the concurrency above. Whatever the client, redirects are never
	// followed: the Dispatcher uses a copy whose CheckRedirect returns
	// http.ErrUseLastResponse.
	HTTPClient *http.Client
	// Now is the clock (time.Now). Rand returns uniform values in [0, 1)
	// for the backoff jitter (math/rand/v2.Float64). Both are for tests.
	Now  func() time.Time
	Rand func() float64
	// OnAttempt, when set, is called after each attempt with the HTTP
	// status (0: no answer), the outcome ("delivered", "failed" or
	// "retry") and the request's latency, for metrics. It runs on the
	// worker goroutine and must be fast.
	OnAttempt func(status int, outcome string, latency time.Duration)
	// StreamThreshold: a delivery whose raw message is larger has its body
	// (rendered by NewRenderer) streamed, encoded once to sign it and once
	// into the request, instead of being built in memory (1 MiB;
	// negative: never).
	StreamThreshold int64
	// PauseAfter is how many failures in a row (no connection, a
	// timeout, 408, 429 or 5xx), with nothing taken in between, pause an
	// endpoint (10; negative: never). See pause.go.
	PauseAfter int
	// PauseMax caps the wait between two attempts at a paused endpoint
	// (30 s, and at most RetryMaxInterval).
	PauseMax time.Duration
	// RenderMemory bounds the memory held by the attempts in flight, as
	// estimated from their raw messages (renderWeight): an attempt waits
	// until its share fits (64 MiB; negative: no bound). One message too
	// large for the whole bound is attempted alone.
	RenderMemory int64
}

// Defaults.
const (
	DefaultRetryInitial           = 10 * time.Second
	DefaultRetryMultiplier        = 2.0
	DefaultRetryJitter            = 0.5
	DefaultRetryMaxInterval       = time.Hour
	DefaultRetryMaxElapsed        = 72 * time.Hour
	DefaultAttemptTimeout         = 30 * time.Second
	DefaultConcurrency            = 32
	DefaultPerEndpointConcurrency = 16
	DefaultRescanInterval         = 30 * time.Second
	DefaultLeaseTTL               = 15 * time.Second
	DefaultUserAgent              = "mailhook/dev"
	DefaultStreamThreshold        = 1 << 20
	DefaultRenderMemory           = 64 << 20
	DefaultPauseAfter             = 10
	DefaultPauseMax               = 30 * time.Second
)

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	setDur := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	setDur(&c.RetryInitial, DefaultRetryInitial)
	setDur(&c.RetryMaxInterval, DefaultRetryMaxInterval)
	setDur(&c.RetryMaxElapsed, DefaultRetryMaxElapsed)
	setDur(&c.AttemptTimeout, DefaultAttemptTimeout)
	setDur(&c.RescanInterval, DefaultRescanInterval)
	setDur(&c.LeaseTTL, DefaultLeaseTTL)
	if c.RetryMultiplier < 1 {
		c.RetryMultiplier = DefaultRetryMultiplier
	}
	switch {
	case c.RetryJitter == 0:
		c.RetryJitter = DefaultRetryJitter
	case c.RetryJitter < 0:
		c.RetryJitter = 0
	case c.RetryJitter > 1:
		c.RetryJitter = 1
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.PerEndpointConcurrency <= 0 {
		c.PerEndpointConcurrency = DefaultPerEndpointConcurrency
	}
	if c.PauseAfter == 0 {
		c.PauseAfter = DefaultPauseAfter
	}
	setDur(&c.PauseMax, DefaultPauseMax)
	c.PauseMax = min(c.PauseMax, c.RetryMaxInterval)
	if c.ReplicaID == "" {
		c.ReplicaID = randomID()
	}
	if c.UserAgent == "" {
		c.UserAgent = DefaultUserAgent
	}
	if c.StreamThreshold == 0 {
		c.StreamThreshold = DefaultStreamThreshold
	}
	if c.RenderMemory == 0 {
		c.RenderMemory = DefaultRenderMemory
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	c.HTTPClient = noRedirects(c.HTTPClient, c.PerEndpointConcurrency, c.Concurrency)
	return c
}

// NewOwner returns the lease owner of a process with a new random
// replica id: pass its ID as Config.ReplicaID, and the owner to
// queue.Options.Owner so that the claims Accept writes are this
// dispatcher's.
func NewOwner() queue.LeaseOwner { return ownerOf(randomID()) }

func ownerOf(replicaID string) queue.LeaseOwner {
	host, _ := os.Hostname()
	return queue.LeaseOwner{ID: replicaID, Host: host, PID: os.Getpid(), Proc: procIdentity()}
}

// randomID returns 16 random hex digits.
func randomID() string {
	var b [8]byte
	_, _ = crand.Read(b[:]) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b[:])
}

// noRedirects returns a copy of hc (or a new default client) that never
// follows redirects.
func noRedirects(hc *http.Client, perHost, total int) *http.Client {
	var c http.Client
	if hc != nil {
		c = *hc
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = max(100, 4*total)
		tr.MaxIdleConnsPerHost = perHost
		tr.IdleConnTimeout = 90 * time.Second
		c.Transport = tr
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// RetryPolicy computes backoff delays. It is a pure function of its inputs.
type RetryPolicy struct {
	Initial     time.Duration
	Multiplier  float64
	Jitter      float64 // randomization factor in [0, 1]
	MaxInterval time.Duration
}

// Policy returns the retry policy of c after defaults.
func (c Config) Policy() RetryPolicy {
	c = c.withDefaults()
	return RetryPolicy{Initial: c.RetryInitial, Multiplier: c.RetryMultiplier, Jitter: c.RetryJitter, MaxInterval: c.RetryMaxInterval}
}

// Delay returns the wait after the n-th failed attempt (n ≥ 1), given r, a
// uniform random value in [0, 1):
//
//	base  = min(Initial·Multiplier^(n-1), MaxInterval)   (backoff/v4's sequence)
//	delay = base·(1 - Jitter) + r·2·Jitter·base
//
// so with the defaults the delays are 10s, 20s, 40s, … 1h, each ±50%.
func (p RetryPolicy) Delay(n int, r float64) time.Duration {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.Initial,
		RandomizationFactor: 0, // the jitter is ours, so that r is injected
		Multiplier:          p.Multiplier,
		MaxInterval:         p.MaxInterval,
		MaxElapsedTime:      0, // the window is checked by the dispatcher
		Stop:                backoff.Stop,
		Clock:               zeroClock{},
	}
	b.Reset()
	base := b.InitialInterval
	for i := 0; i < max(n, 1); i++ {
		base = b.NextBackOff()
		if base >= p.MaxInterval {
			base = p.MaxInterval
			break
		}
	}
	delta := p.Jitter * float64(base)
	return time.Duration(float64(base) - delta + r*2*delta)
}

type zeroClock struct{}

func (zeroClock) Now() time.Time { return time.Time{} }
