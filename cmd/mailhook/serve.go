package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/dispatch"
	"github.com/mailhook/mailhook/httpapi"
	"github.com/mailhook/mailhook/inbound"
	"github.com/mailhook/mailhook/metrics"
	"github.com/mailhook/mailhook/parse"
	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/route"
	"github.com/mailhook/mailhook/signing"
	"github.com/mailhook/mailhook/store"
	"github.com/mailhook/mailhook/store/fs"
)

// app is the composed process: the one place concrete types meet.
type app struct {
	cfg   *config.Config
	log   *slog.Logger
	store store.Store
	queue *queue.Queue
	disp  *dispatch.Dispatcher
	smtp  *inbound.Server
	http  *http.Server
	api   *httpapi.Handler
	// retention is nil when everything is kept.
	retention *retention
}

// compose wires every stage from the configuration.
func compose(ctx context.Context, cfg *config.Config, log *slog.Logger) (*app, error) {
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	var room func(int64) bool
	if sr, ok := st.(spaceReporter); ok {
		room = newRoomGate(sr, log).room
	}
	// The store is timed by a decorator that keeps io.Closer for shutdown.
	mx := metrics.New(version)
	st = metrics.InstrumentStore(st, mx)
	patterns, _ := route.ParsePatterns(cfg.Recipients) // validated by config
	policy := route.NewPolicy(patterns, cfg.Hostname)
	if policy.AcceptsAll() {
		log.Warn("MAILHOOK_RECIPIENTS is empty: accepting mail for any recipient")
	}
	rules, _ := route.ParseRules(cfg.Routes)
	table := route.NewTable(rules, cfg.WebhookURL)
	if len(table.Endpoints()) == 0 {
		log.Warn("no webhook endpoint configured: events are stored only; send them later with mailhook replay --failed --endpoint URL")
	}
	var signer dispatch.Signer
	if len(cfg.WebhookSecret) > 0 {
		s, err := signing.NewSigner(cfg.WebhookSecret...)
		if err != nil {
			return nil, usageError{fmt.Errorf("MAILHOOK_WEBHOOK_SECRET: %w", err)}
		}
		signer = s
	} else {
		log.Warn("MAILHOOK_WEBHOOK_SECRET is empty: webhooks are not signed")
	}

	a := &app{cfg: cfg, log: log, store: st}
	owner := dispatch.NewOwner()
	a.queue = queue.New(queue.Options{
		Store:     st,
		Router:    table,
		Logger:    log,
		OnEnqueue: func(d *queue.Delivery) { a.disp.Enqueue(d) },
		// Accepted deliveries carry this process's claim: their first
		// attempt needs no lease write.
		Owner:    owner,
		ClaimTTL: cfg.LeaseTTL,
	})
	renderer := dispatch.NewRenderer(a.queue, parse.Options{
		MaxAttachmentBytes: cfg.MaxAttachmentBytes,
		MaxParts:           cfg.ParseMaxParts,
		MaxDepth:           cfg.ParseMaxDepth,
		MaxDuration:        cfg.ParseTimeout,
	})
	a.disp = dispatch.New(dispatch.Config{
		RetryInitial:           cfg.RetryInitial,
		RetryMaxInterval:       cfg.RetryMaxInterval,
		RetryMaxElapsed:        cfg.RetryMaxElapsed,
		AttemptTimeout:         cfg.DeliveryTimeout,
		Concurrency:            deliveryConcurrency(cfg),
		PerEndpointConcurrency: cfg.DeliveryEndpointConcurrent,
		PauseAfter:             pauseAfter(cfg.EndpointPauseAfter),
		RenderMemory:           cfg.DeliveryMemory,
		RescanInterval:         cfg.QueueScanInterval,
		LeaseTTL:               cfg.LeaseTTL,
		ReplicaID:              owner.ID,
		OnAttempt:              mx.DeliveryAttempt,
		UserAgent:              "mailhook/" + version,
	}, a.queue, renderer, signer, log)

	var tlsConfig *tls.Config
	if cfg.TLSCertFile != "" {
		reloader, err := inbound.NewCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("MAILHOOK_TLS_CERT_FILE/MAILHOOK_TLS_KEY_FILE: %w", err)}
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: reloader.GetCertificate}
	}
	proxyNets, _ := config.ParseNetworks(cfg.ProxyProtocol) // validated by config
	exempt, _ := config.ParseNetworks(cfg.SessionLimitExceptions)
	if len(proxyNets) > 0 {
		log.Info("PROXY protocol required from trusted networks; other peers are refused", "networks", cfg.ProxyProtocol)
	}
	a.smtp = inbound.NewServer(inbound.Config{
		Hostname:           cfg.Hostname,
		MaxMessageBytes:    cfg.MaxMessageBytes,
		MaxRecipients:      cfg.MaxRecipients,
		BareNewline:        cfg.BareNewline,
		CommandTimeout:     cfg.CommandTimeout,
		DataTimeout:        cfg.DataTimeout,
		SessionTimeout:     cfg.SessionTimeout,
		MaxSessions:        cfg.MaxSessions,
		MaxSessionsPerIP:   cfg.MaxSessionsPerIP,
		MaxBadCommands:     cfg.MaxBadCommands,
		SessionLimitExempt: exempt,
		EvictIdleAfter:     cfg.EvictIdleAfter,
		TLSConfig:          tlsConfig,
		RequireTLS:         cfg.TLSRequired,
		ProxyProtocol:      proxyNets,
		ProxyHeaderTimeout: cfg.ProxyHeaderTimeout,
		MaxLineLength:      cfg.MaxLineLength,
		Observer:           mx.SMTPObserver(),
		Logger:             log,
		Room:               room,
	}, inbound.AcceptorFunc(func(ctx context.Context, m *inbound.Message) error {
		return a.queue.Accept(ctx, m.ID, m.ReceivedAt, m.Envelope, m.Body)
	}), policy)

	if cfg.Retention > 0 || cfg.FailedRetention > 0 {
		a.retention = &retention{queue: a.queue, delivered: cfg.Retention, failed: cfg.FailedRetention,
			onExpired: mx.Expired, onOrphans: mx.ExpiredOrphans, log: log}
		log.Info("retention on: finished mail older than this is deleted (0: kept)",
			"delivered", cfg.Retention, "failed", cfg.FailedRetention, "pass_every", a.retention.interval())
	}
	mx.WatchDispatcher(a.disp)
	a.api = httpapi.New(map[string]httpapi.Checker{"store": st.Ping}, log)
	a.api.Handle("GET /metrics", mx.Handler())
	// The admin API answers 404 to everything when MAILHOOK_ADMIN_TOKEN is empty.
	a.api.Handle("/v1/", httpapi.NewAdmin(cfg.AdminToken, adminBackend{
		Queue:  a.queue,
		render: renderer,
	}, log))
	a.http = &http.Server{Handler: a.api, ReadHeaderTimeout: 10 * time.Second}
	return a, nil
}

// pauseAfter is dispatch.Config.PauseAfter for MAILHOOK_ENDPOINT_PAUSE_AFTER
// (0: never, which the dispatcher spells negative).
func pauseAfter(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// s3DeliveryConcurrency is MAILHOOK_DELIVERY_CONCURRENCY's default on S3.
// A delivery worker waits for the outcome's writes after the webhook (a
// PUT and a DELETE, a round trip each), so 32 workers cap delivery at
// 32 / (request + 2 round trips): on MinIO under load (about 100 ms a
// request) that was half the acceptance rate, the backlog and end-to-end
// p99 (12.8 s) growing for as long as mail came. With 128: 231 webhooks/s
// against 164, p99 4.4 ms, and less CPU a message on both sides (no
// backlog to take over). On the filesystem store 128 changed nothing at
// 2 KB and raised peak RSS at 1 MB from 99 to 132 MB, so it stays 32.
const s3DeliveryConcurrency = 128

// deliveryConcurrency is MAILHOOK_DELIVERY_CONCURRENCY, or when 0 the
// default for the kind of store.
func deliveryConcurrency(cfg *config.Config) int {
	if cfg.DeliveryConcurrency > 0 {
		return cfg.DeliveryConcurrency
	}
	if u, err := config.ParseStore(cfg.Store); err == nil && u.Scheme == "file" {
		return dispatch.DefaultConcurrency
	}
	return s3DeliveryConcurrency
}

// openStore opens MAILHOOK_STORE and checks it is usable, warning on log
// about what is usable but not right.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (store.Store, error) {
	u, err := config.ParseStore(cfg.Store)
	if err != nil {
		return nil, usageError{fmt.Errorf("MAILHOOK_STORE: %w", err)}
	}
	switch u.Scheme {
	case "file":
		st, err := fs.New(u.Path, fs.WithCommitDelay(cfg.StoreCommitDelay), fs.WithLog(cfg.StoreLog))
		if err != nil {
			return nil, usageError{fmt.Errorf("MAILHOOK_STORE=%q: %w", cfg.Store, err)}
		}
		return st, nil
	}
	return openS3(ctx, cfg, u, log)
}

// extraVars are the MAILHOOK_ variables read outside package config
// (by build-tagged files), so not warned about as unknown.
var extraVars []string

// serve runs until ctx is cancelled (SIGTERM/SIGINT), then shuts down in
// two phases within MAILHOOK_SHUTDOWN_GRACE.
func serve(ctx context.Context, lookup func(string) (string, bool), stderr io.Writer, unhook func()) error {
	cfg, err := loadConfig(lookup)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	for _, w := range config.Unknown(os.Environ(), extraVars...) {
		log.Warn(w)
	}
	a, err := compose(ctx, cfg, log)
	if err != nil {
		return err
	}
	smtpLn, err := net.Listen("tcp", cfg.SMTPAddr)
	if err != nil {
		return usageError{fmt.Errorf("MAILHOOK_SMTP_ADDR=%q: %w", cfg.SMTPAddr, err)}
	}
	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		smtpLn.Close()
		return usageError{fmt.Errorf("MAILHOOK_HTTP_ADDR=%q: %w", cfg.HTTPAddr, err)}
	}
	log.Info("listening", "smtp", smtpLn.Addr().String(), "http", httpLn.Addr().String(),
		"store", a.store.String(), "version", version, "hostname", cfg.Hostname)

	dispCtx, cancelDisp := context.WithCancel(context.Background())
	defer cancelDisp()
	errc := make(chan error, 3)
	go func() { errc <- ignoreClosed(a.smtp.Serve(smtpLn), inbound.ErrServerClosed) }()
	go func() { errc <- ignoreClosed(a.http.Serve(httpLn), http.ErrServerClosed) }()
	dispDone := make(chan error, 1)
	go func() { dispDone <- a.disp.Run(dispCtx) }()
	retDone := make(chan struct{})
	go func() {
		defer close(retDone)
		if a.retention != nil {
			a.retention.run(dispCtx)
		}
	}()

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "grace", cfg.ShutdownGrace)
	case runErr = <-errc:
		log.Error("server failed; shutting down", "err", runErr)
	case runErr = <-dispDone:
		log.Error("dispatcher stopped; shutting down", "err", runErr)
		dispDone <- nil
	}
	unhook() // a second signal now kills the process at once; nothing acknowledged is lost

	// Phase one: refuse new work, finish what is in flight.
	a.api.Drain()
	graceCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	if err := a.smtp.Shutdown(graceCtx); err != nil {
		log.Warn("SMTP sessions cut off at the end of the grace period", "err", err)
	}
	if err := a.disp.Shutdown(graceCtx); err != nil {
		log.Warn("webhook attempts cut off at the end of the grace period; they stay pending", "err", err)
	}
	// Phase two: stop everything else.
	cancelDisp()
	<-dispDone
	<-retDone
	httpCtx, cancelHTTP := context.WithTimeout(context.Background(), time.Second)
	defer cancelHTTP()
	_ = a.http.Shutdown(httpCtx)
	if c, ok := a.store.(io.Closer); ok {
		_ = c.Close()
	}
	log.Info("stopped")
	return runErr
}

func ignoreClosed(err, closed error) error {
	if errors.Is(err, closed) {
		return nil
	}
	return err
}
