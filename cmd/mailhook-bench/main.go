package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit status, mapped in one place.
const (
	exitOK    = 0 // every acknowledged message reached the sink, signatures all good
	exitFail  = 1 // something missing, a bad signature, nothing acknowledged, or a run error
	exitUsage = 2 // bad flags
)

// options are the parsed flags.
type options struct {
	load         loadConfig
	size         int
	sinkAddr     string
	sinkURLFile  string
	noSink       bool
	sinkDown     time.Duration
	secret       string
	drainTimeout time.Duration
	wait         time.Duration
	rssPID       int
	progress     time.Duration
	run          string // run id (not a flag)
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("mailhook-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailhook-bench [flags]\n\nSends mail to an SMTP server and, unless -no-sink, receives its webhooks; see go doc for examples.\n\nflags:")
		fs.PrintDefaults()
	}
	var count int64
	var size string
	fs.StringVar(&o.load.Target, "smtp", "127.0.0.1:2525", "SMTP server to load, host:port")
	fs.IntVar(&o.load.Concurrency, "c", 32, "concurrent SMTP sessions")
	fs.Int64Var(&count, "n", 10000, "messages to send (0 = no count limit; -d must then be set)")
	fs.DurationVar(&o.load.Duration, "d", 30*time.Second, "stop starting messages after this long (0 = no time limit; -n must then be set)")
	fs.StringVar(&size, "size", "2KB", "message size: bytes or 2KB, 1MB, 25MB (binary units); above 64KB a PDF attachment makes up the bulk")
	fs.BoolVar(&o.load.Pipelining, "pipelining", false, "send MAIL, RCPT and DATA in one write when the server advertises PIPELINING (RFC 2920)")
	fs.Float64Var(&o.load.Rate, "rate", 0, "open loop: start this many messages per second across all sessions, at fixed intervals; SMTP latency then counts from each message's due time (0 = closed loop, as fast as -c sessions go)")
	fs.IntVar(&o.load.PerConn, "per-conn", 100, "messages per SMTP connection before QUIT and reconnect")
	fs.StringVar(&o.load.Rcpt, "rcpt", "bench@example.com", "envelope recipient (RCPT TO) and To:")
	fs.StringVar(&o.load.From, "from", "loadgen@example.org", "envelope sender (MAIL FROM) and From:")
	fs.StringVar(&o.load.Helo, "helo", "mailhook-bench.invalid", "EHLO name")
	fs.DurationVar(&o.load.Timeout, "timeout", 30*time.Second, "per SMTP reply, connect, and per MiB of message written")
	fs.StringVar(&o.sinkAddr, "sink", "127.0.0.1:0", "address of the built-in webhook sink (its URL is printed on stderr)")
	fs.StringVar(&o.sinkURLFile, "sink-url-file", "", "also write the sink's URL to this file (atomically), for scripts")
	fs.BoolVar(&o.noSink, "no-sink", false, "measure SMTP only: no webhook sink, no end-to-end figures")
	fs.DurationVar(&o.sinkDown, "sink-down", 0, "the sink answers 503 to every webhook for this long from the start (a receiver outage); the report says how long after its return the last webhook came (recovery_seconds). Give -drain-timeout room for the sender's retries")
	fs.StringVar(&o.secret, "secret", "", "whsec_… secret to verify webhook signatures with (empty: signatures are not checked)")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 60*time.Second, "after sending, wait at most this long for the webhooks of acknowledged messages")
	fs.DurationVar(&o.wait, "wait", 30*time.Second, "wait up to this long for the SMTP server to accept connections before starting")
	fs.IntVar(&o.rssPID, "rss-pid", 0, "sample this process's RSS (/proc/PID/status) every 100 ms and report its peak")
	fs.DurationVar(&o.progress, "progress", 5*time.Second, "print progress on stderr this often (0 = never)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	if o.load.Concurrency < 1 || o.load.Concurrency > 10000 {
		problems = append(problems, "-c must be 1…10000")
	}
	if count < 0 || count > maxCount {
		problems = append(problems, fmt.Sprintf("-n must be 0…%d", int64(maxCount)))
	}
	o.load.Count = uint64(max(count, 0))
	if o.load.Duration < 0 {
		problems = append(problems, "-d must not be negative")
	}
	if count == 0 && o.load.Duration == 0 {
		problems = append(problems, "-n 0 and -d 0: the run would never end; bound it with one or both")
	}
	n, err := parseSize(size)
	if err != nil {
		problems = append(problems, "-size: "+err.Error())
	}
	o.size = n
	if o.load.Rate < 0 || o.load.Rate > 1e7 || o.load.Rate != o.load.Rate {
		problems = append(problems, "-rate must be 0…10000000 messages/s")
	}
	if o.load.PerConn < 1 {
		problems = append(problems, "-per-conn must be at least 1")
	}
	if o.load.Timeout <= 0 {
		problems = append(problems, "-timeout must be positive")
	}
	if o.drainTimeout < 0 || o.wait < 0 || o.progress < 0 {
		problems = append(problems, "-drain-timeout, -wait and -progress must not be negative")
	}
	if _, _, err := net.SplitHostPort(o.load.Target); err != nil {
		problems = append(problems, fmt.Sprintf("-smtp %q: %v", o.load.Target, err))
	}
	for name, v := range map[string]string{"-from": o.load.From, "-rcpt": o.load.Rcpt, "-helo": o.load.Helo} {
		if v == "" || strings.ContainsAny(v, "<> \r\n") {
			problems = append(problems, fmt.Sprintf("%s %q: must be non-empty, without spaces or angle brackets", name, v))
		}
	}
	if o.sinkDown < 0 {
		problems = append(problems, "-sink-down must not be negative")
	}
	if o.noSink && (o.sinkURLFile != "" || o.secret != "" || o.sinkDown > 0) {
		problems = append(problems, "-no-sink excludes -sink-url-file, -secret and -sink-down")
	}
	if o.rssPID < 0 {
		problems = append(problems, "-rss-pid must be a process id")
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	return o, nil
}

// run is the whole program; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "mailhook-bench:", err)
		return exitUsage
	}
	o.run = newRunID()
	var sk *sink
	if !o.noSink {
		sk, err = startSink(o.sinkAddr, o.secret, o.run)
		if err != nil {
			fmt.Fprintln(stderr, "mailhook-bench:", err)
			return exitUsage
		}
		defer sk.Close()
		sk.downFor = o.sinkDown
		fmt.Fprintf(stderr, "mailhook-bench: webhook sink at %s — set MAILHOOK_WEBHOOK_URL=%s\n", sk.URL(), sk.URL())
		if o.secret == "" {
			fmt.Fprintln(stderr, "mailhook-bench: no -secret: webhook signatures are not checked")
		}
		if o.sinkURLFile != "" {
			if err := writeFileAtomic(o.sinkURLFile, []byte(sk.URL()+"\n")); err != nil {
				fmt.Fprintln(stderr, "mailhook-bench: -sink-url-file:", err)
				return exitFail
			}
		}
	}
	res, err := runBench(ctx, o, sk, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "mailhook-bench:", err)
		return exitFail
	}
	res.writeHuman(stderr)
	line, _ := json.Marshal(res)
	fmt.Fprintf(stdout, "%s\n", line)
	if !res.OK {
		return exitFail
	}
	return exitOK
}

// runBench builds the message, waits for the server, sends, drains the
// webhooks into sk (nil: -no-sink) and returns the figures.
func runBench(ctx context.Context, o *options, sk *sink, stderr io.Writer) (*result, error) {
	tmpl, err := buildTemplate(o.size, o.load.From, o.load.Rcpt)
	if err != nil {
		return nil, err
	}
	if tmpl.size != o.size {
		fmt.Fprintf(stderr, "mailhook-bench: -size %d is below the smallest message of this shape; sending %d bytes\n", o.size, tmpl.size)
	}
	if err := waitSMTP(ctx, o.load.Target, o.wait); err != nil {
		return nil, err
	}
	var rss *rssSampler
	if o.rssPID > 0 {
		if _, _, err := readStatus(o.rssPID); err != nil {
			return nil, fmt.Errorf("-rss-pid %d: %w", o.rssPID, err)
		}
		rss = startRSS(o.rssPID, 100*time.Millisecond)
	}

	probe := probeHost()
	start := time.Now()
	trk := newTracker(start)
	if sk != nil {
		sk.attach(trk)
	}
	st := &loadStats{}
	stopProgress := progress(o.progress, stderr, st, trk, sk != nil)
	runLoad(ctx, o.load, tmpl, o.run, trk, st)
	smtpElapsed := time.Since(start)

	drained := true
	if sk != nil {
		drained = drain(ctx, trk, o.drainTimeout)
	}
	stopProgress()
	res := newResult(o, tmpl, st, trk, sk, smtpElapsed, time.Since(start), drained)
	res.Host = probe.finish()
	if rss != nil {
		res.ServerRSS = rss.stop()
	}
	return res, nil
}

// waitSMTP waits until target accepts TCP connections, for at most d.
func waitSMTP(ctx context.Context, target string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", target, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("SMTP server %s not reachable: %w", target, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// drain waits until every acknowledged message has reached the sink, ctx
// ends or timeout passes; it reports whether all arrived.
func drain(ctx context.Context, trk *tracker, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if trk.delivered.Load() >= trk.acked.Load() {
			return true
		}
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// progress prints a line every interval until the returned func is called.
func progress(every time.Duration, w io.Writer, st *loadStats, trk *tracker, withSink bool) func() {
	if every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			line := fmt.Sprintf("mailhook-bench: %5.0fs  sent %d  acked %d  4xx %d  5xx %d  conn errors %d",
				time.Since(start).Seconds(), st.sent.Load(), st.acked.Load(), st.tempFailed.Load(), st.permFailed.Load(), st.connErrors.Load())
			if withSink {
				line += fmt.Sprintf("  delivered %d", trk.delivered.Load())
			}
			fmt.Fprintln(w, line)
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// writeFileAtomic writes b to path through a temporary file and a rename,
// so a reader never sees a partial file.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".mailhook-bench-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}
