package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mailhook/mailhook/config"
)

// healthcheckTimeout bounds one healthcheck request, connection included.
const healthcheckTimeout = 3 * time.Second

// healthcheck asks the local server's HTTP side whether it is alive
// (/healthz) or ready (/readyz, with --ready) and returns nil only on 200.
// It is the container health probe: distroless images have no shell or curl,
// so the image runs "/mailhook healthcheck".
//
// It reads only MAILHOOK_HTTP_ADDR, never the rest of the configuration: a
// probe must not report a running server unhealthy because, say, a secret
// was rotated in the environment after it started.
func healthcheck(ctx context.Context, args []string, lookup func(string) (string, bool), stdout io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	ready := fs.Bool("ready", false, "check /readyz (store reachable, not draining) instead of /healthz")
	rawURL := fs.String("url", "", "URL to GET instead of the local server's")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "usage: mailhook healthcheck [--ready] [--url URL]")
			return nil
		}
		return usagef("healthcheck: %v\nusage: mailhook healthcheck [--ready] [--url URL]", err)
	}
	if fs.NArg() > 0 {
		return usagef("healthcheck: unexpected argument %q\nusage: mailhook healthcheck [--ready] [--url URL]", fs.Arg(0))
	}

	target := *rawURL
	if target == "" {
		addr := ":8080"
		if v, ok := lookup(config.Prefix + "HTTP_ADDR"); ok && v != "" {
			addr = v
		}
		path := "/healthz"
		if *ready {
			path = "/readyz"
		}
		base, err := localURL(addr)
		if err != nil {
			return usagef("healthcheck: %sHTTP_ADDR=%q: %v", config.Prefix, addr, err)
		}
		target = base + path
	} else if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("healthcheck: --url %q: want an http:// or https:// URL", target)
	}

	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	client := &http.Client{
		Timeout: healthcheckTimeout,
		// A probe talks to its own process: no proxy from the environment,
		// no connection kept for a next time that never comes.
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		// A redirect is not health.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: GET %s: %w", target, unwrapURLError(err))
	}
	defer resp.Body.Close()
	// The body of /readyz names the failing check; keep a little of it.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		detail := strings.TrimSpace(string(body))
		if detail != "" {
			detail = ": " + detail
		}
		return fmt.Errorf("healthcheck: GET %s: %s%s", target, resp.Status, detail)
	}
	fmt.Fprintf(stdout, "ok: GET %s: %s\n", target, resp.Status)
	return nil
}

// localURL turns a listen address into the base URL a process on the same
// host reaches it by. A wildcard or empty host (":8080", "0.0.0.0:8080",
// "[::]:8080") and host names are reached over 127.0.0.1; a specific IP
// address is used as is, since the server listens only there.
func localURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", errors.New("want host:port or :port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", errors.New("want a fixed port number to check")
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// unwrapURLError drops *url.Error's "Get \"…\":" prefix, which would repeat
// the URL already in the message.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
