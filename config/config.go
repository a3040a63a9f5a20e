package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v10"

	"github.com/mailhook/mailhook/route"
)

// Prefix starts every variable's name.
const Prefix = "MAILHOOK_"

// Config is the whole configuration. The env tag names the variable (after
// Prefix), envDefault its default, help its one-line description; a field
// tagged secret:"true" is redacted when printed, one tagged redact:"url"
// or redact:"routes" has the secrets of its URLs masked.
type Config struct {
	SMTPAddr   string `env:"SMTP_ADDR" envDefault:":2525" help:"SMTP listen address"`
	HTTPAddr   string `env:"HTTP_ADDR" envDefault:":8080" help:"health, metrics and admin API listen address"`
	Hostname   string `env:"HOSTNAME" help:"name in the SMTP banner, EHLO reply and Received header (default: the OS hostname)"`
	Recipients string `env:"RECIPIENTS" help:"comma-separated accepted recipients: user@example.com, *@example.com, *@*.example.com; empty accepts any (warned at start)"`

	WebhookURL    string   `env:"WEBHOOK_URL" redact:"url" help:"default webhook endpoint for every accepted recipient; empty: events are stored and can be replayed later"`
	WebhookSecret []string `env:"WEBHOOK_SECRET" envSeparator:"," secret:"true" help:"whsec_… signing secret(s), comma-separated for rotation (each signs); the whsec_ prefix may be left out"`
	Routes        string   `env:"ROUTES" redact:"routes" help:"per-recipient endpoints: pattern=url pairs separated by ';', first match wins, before the default"`

	Store              string        `env:"STORE" envDefault:"file://./data" help:"where mail and delivery state live: file:///path or s3://bucket/optional/prefix"`
	StoreCommitDelay   time.Duration `env:"STORE_COMMIT_DELAY" envDefault:"2ms" help:"filesystem store: how long a group commit (one syncfs for many messages) may wait for writers still on their way to it, when one has just ended; 0 = never wait"`
	StoreLog           bool          `env:"STORE_LOG" envDefault:"true" help:"filesystem store: make messages of up to 256 KiB durable through a per-process log (.tmp/wal) instead of a syncfs each; false = syncfs only"`
	S3Endpoint         string        `env:"S3_ENDPOINT" help:"S3-compatible endpoint URL (MinIO, R2, versitygw, …); empty: AWS"`
	S3Region           string        `env:"S3_REGION" envDefault:"us-east-1" help:"S3 region"`
	S3PathStyle        bool          `env:"S3_PATH_STYLE" envDefault:"false" help:"use path-style S3 addressing"`
	TLSCertFile        string        `env:"TLS_CERT_FILE" help:"PEM certificate chain; with TLS_KEY_FILE enables STARTTLS"`
	TLSKeyFile         string        `env:"TLS_KEY_FILE" help:"PEM private key for TLS_CERT_FILE"`
	AdminToken         string        `env:"ADMIN_TOKEN" secret:"true" help:"bearer token for the admin API; empty: admin API off"`
	TLSRequired        bool          `env:"TLS_REQUIRED" envDefault:"false" help:"refuse MAIL with 530 5.7.0 until the client has used STARTTLS (needs TLS_CERT_FILE)"`
	ProxyProtocol      string        `env:"PROXY_PROTOCOL" help:"comma-separated CIDRs of trusted load balancers that must send a PROXY protocol v1/v2 header (other peers are refused); empty: off"`
	ProxyHeaderTimeout time.Duration `env:"PROXY_HEADER_TIMEOUT" envDefault:"5s" help:"time allowed for a PROXY protocol header"`
	MaxLineLength      int           `env:"MAX_LINE_LENGTH" envDefault:"0" help:"longest text line accepted in DATA, in octets (RFC 5321 says 1000; 0 = no limit, lines count toward the size only)"`
	BareNewline        string        `env:"BARE_NEWLINE" envDefault:"normalize" help:"bare CR or LF in DATA: normalize (store as CRLF) or reject (550 5.5.2)"`
	LogLevel           string        `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	LogFormat          string        `env:"LOG_FORMAT" envDefault:"auto" help:"json, text, or auto (text on a terminal, JSON otherwise)"`

	MaxMessageBytes  int64 `env:"MAX_MESSAGE_BYTES" envDefault:"26214400" help:"largest message accepted; larger ones get 552 5.3.4"`
	MaxRecipients    int   `env:"MAX_RECIPIENTS" envDefault:"100" help:"recipients per message; more get 452 4.5.3"`
	MaxSessions      int   `env:"MAX_SESSIONS" envDefault:"1000" help:"concurrent SMTP sessions; more get 421 4.7.0"`
	MaxSessionsPerIP int   `env:"MAX_SESSIONS_PER_IP" envDefault:"20" help:"concurrent SMTP sessions from one client IP (the real client behind PROXY protocol); more get 421 4.7.0"`
	MaxBadCommands   int   `env:"MAX_BAD_COMMANDS" envDefault:"10" help:"SMTP commands refused in a row for being unknown, out of sequence or malformed (500–504, 553, 555; an unknown recipient does not count) after which the session gets 421 4.7.0 and is closed"`

	SessionLimitExceptions string        `env:"SESSION_LIMIT_EXCEPTIONS" envDefault:"127.0.0.0/8,::1/128" help:"comma-separated client networks exempt from MAX_SESSIONS_PER_IP (as Postfix exempts $mynetworks): local relays, load generators"`
	EvictIdleAfter         time.Duration `env:"SMTP_EVICT_IDLE_AFTER" envDefault:"10s" help:"at MAX_SESSIONS, a new client takes the slot of the session idle longest outside a transaction, if idle at least this long (it gets 421 4.7.0)"`

	CommandTimeout time.Duration `env:"SMTP_COMMAND_TIMEOUT" envDefault:"5m" help:"idle time allowed while waiting for an SMTP command"`
	DataTimeout    time.Duration `env:"SMTP_DATA_TIMEOUT" envDefault:"5m" help:"idle time allowed between reads of message data"`
	SessionTimeout time.Duration `env:"SMTP_SESSION_TIMEOUT" envDefault:"30m" help:"longest an SMTP session may last"`

	RetryInitial     time.Duration `env:"RETRY_INITIAL" envDefault:"10s" help:"first retry delay (exponential backoff with jitter)"`
	RetryMaxInterval time.Duration `env:"RETRY_MAX_INTERVAL" envDefault:"1h" help:"longest delay between two attempts, a receiver's Retry-After included"`
	RetryMaxElapsed  time.Duration `env:"RETRY_MAX_ELAPSED" envDefault:"72h" help:"how long a delivery is retried before it becomes a dead letter"`

	Retention       time.Duration `env:"RETENTION" envDefault:"0" help:"delivered mail is deleted once received and delivered longer ago than this (7d, 720h): its delivery records, and its raw message when no other record of it is left; 0 = kept forever"`
	FailedRetention time.Duration `env:"FAILED_RETENTION" envDefault:"0" help:"dead letters are deleted the same way once received and failed longer ago than this; 0 = kept until replayed"`

	MaxAttachmentBytes int64         `env:"MAX_ATTACHMENT_BYTES" envDefault:"0" help:"attachments whose decoded size is larger go in the webhook without their content (content null; size, sha256 and a warning kept; the raw message keeps them whole); 0 = no limit"`
	ParseMaxParts      int           `env:"PARSE_MAX_PARTS" envDefault:"1000" help:"MIME parts parsed into the webhook; the rest of a message with more is left out with a warning (the raw message keeps it)"`
	ParseMaxDepth      int           `env:"PARSE_MAX_DEPTH" envDefault:"50" help:"deepest multipart nesting parsed into the webhook; deeper parts are left out with a warning"`
	ParseTimeout       time.Duration `env:"PARSE_TIMEOUT" envDefault:"5s" help:"time allowed for decoding one message's parts; parts left when it is spent are left out with a warning. The part where it ran out is recorded with the delivery, and every later attempt and replay stops at that part too, so the event stays the same under its webhook-id"`

	DeliveryTimeout            time.Duration `env:"DELIVERY_TIMEOUT" envDefault:"30s" help:"time allowed for one webhook attempt"`
	DeliveryConcurrency        int           `env:"DELIVERY_CONCURRENCY" envDefault:"0" help:"deliveries worked on at once (request, then recording its outcome); 0 = 32 on the filesystem store, 128 on S3, whose writes each take a round trip; requests to one endpoint are further limited by MAILHOOK_DELIVERY_ENDPOINT_CONCURRENCY"`
	DeliveryEndpointConcurrent int           `env:"DELIVERY_ENDPOINT_CONCURRENCY" envDefault:"16" help:"webhook attempts in flight at once to one endpoint"`
	EndpointPauseAfter         int           `env:"ENDPOINT_PAUSE_AFTER" envDefault:"10" help:"webhook failures in a row (no connection, timeout, 408, 429, 5xx) that pause an endpoint: its deliveries wait, without attempts, and one is tried at a time (after MAILHOOK_RETRY_INITIAL, doubling up to 30 s) until it answers; then they all go out; 0 = never pause"`
	DeliveryMemory             int64         `env:"DELIVERY_MEMORY" envDefault:"67108864" help:"bytes of memory the webhook attempts in flight may hold, estimated from their messages' sizes (about three times the size of a message over 1 MiB, four times a smaller one); attempts wait for room; one message too large for it is sent alone"`
	LeaseTTL                   time.Duration `env:"LEASE_TTL" envDefault:"15s" help:"how long a replica's claim on a delivery lasts unrenewed (renewed every third of it while an attempt runs); a dead replica's deliveries are taken over by the others after about this long, at their next queue scan"`
	QueueScanInterval          time.Duration `env:"QUEUE_SCAN_INTERVAL" envDefault:"30s" help:"how often the pending queue is re-read from the store, picking up replays and deliveries other processes left"`

	ShutdownGrace time.Duration `env:"SHUTDOWN_GRACE" envDefault:"25s" help:"on SIGTERM, time to finish SMTP transactions and webhook attempts in flight"`
}

// Load reads the configuration through lookup (os.LookupEnv in production),
// fills defaults and validates it. The error, if any, is an *Error naming
// every bad variable.
func Load(lookup func(string) (string, bool)) (*Config, error) {
	envs := map[string]string{}
	for _, f := range Fields() {
		if v, ok := lookup(f.Var); ok {
			envs[f.Var] = v
		}
	}
	var c Config
	var bad Error
	err := env.ParseWithOptions(&c, env.Options{Environment: envs, Prefix: Prefix,
		FuncMap: map[reflect.Type]env.ParserFunc{reflect.TypeOf(time.Duration(0)): parseDuration}})
	var agg env.AggregateError
	if errors.As(err, &agg) {
		for _, e := range agg.Errors {
			name, problem := explainParseError(e, envs)
			bad.add(problem)
			bad.unparsed = append(bad.unparsed, name)
		}
	} else if err != nil {
		return nil, err // a programming error in the struct tags
	}
	if c.Hostname == "" {
		// An OS name that cannot stand in SMTP replies (an underscore,
		// say) gives way to localhost rather than stopping start-up.
		if c.Hostname, _ = os.Hostname(); validHostname(c.Hostname) != nil {
			c.Hostname = "localhost"
		}
	} else if err := validHostname(c.Hostname); err != nil {
		bad.add(fmt.Sprintf("%sHOSTNAME=%q: %v", Prefix, c.Hostname, err))
	}
	c.validate(&bad)
	if len(bad.Problems) > 0 {
		return &c, &bad
	}
	return &c, nil
}

// Error lists every configuration problem, one per variable.
type Error struct {
	Problems []string

	unparsed []string // variables whose value did not parse: checked no further
}

// add records problem p, unless it is about a variable already reported
// as unparsable (whose field holds a zero value, not the user's).
func (e *Error) add(p string) {
	for _, name := range e.unparsed {
		if rest, ok := strings.CutPrefix(p, name); ok && (strings.HasPrefix(rest, "=") || strings.HasPrefix(rest, ":")) {
			return
		}
	}
	e.Problems = append(e.Problems, p)
}

func (e *Error) Error() string {
	return "bad configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

// explainParseError names the variable of a parse error and says what is
// wrong with its value.
func explainParseError(err error, envs map[string]string) (name, problem string) {
	var pe env.ParseError
	if errors.As(err, &pe) {
		name := varOf(pe.Name)
		cause := pe.Err
		var ne interface{ Unwrap() error }
		if errors.As(cause, &ne) && ne.Unwrap() != nil {
			cause = ne.Unwrap()
		}
		return name, fmt.Sprintf("%s=%q: not a valid %s (%v)", name, envs[name], kindOf(pe.Type), cause)
	}
	return "", err.Error()
}

// validHostname checks a name for the banner, the EHLO reply and the
// Received header: a domain (RFC 5321 §4.1.2: letters, digits and
// hyphens in dot-separated labels of up to 63; underscores, which some
// internal host names have, are let through: they harm no client) or an
// address literal such as [192.0.2.1].
func validHostname(h string) error {
	if len(h) == 0 || len(h) > 255 {
		return errors.New("want a domain name of 1 to 255 characters")
	}
	if lit, ok := strings.CutPrefix(h, "["); ok {
		lit, ok = strings.CutSuffix(lit, "]")
		v6, tagged := strings.CutPrefix(lit, "IPv6:")
		if a, err := netip.ParseAddr(v6); !ok || err != nil || a.Is6() != tagged || a.Zone() != "" {
			return errors.New("want an address literal such as [192.0.2.1] or [IPv6:2001:db8::1]")
		}
		return nil
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("want a domain name: dot-separated labels of 1 to 63 letters, digits and inner hyphens")
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("character %q is not allowed in a domain name (letters, digits, hyphens, underscores and dots)", c)
			}
		}
	}
	return nil
}

// parseDuration reads a Go duration (90s, 1h30m) or a number of days
// (7d, 1.5d).
func parseDuration(v string) (any, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		if n, err := strconv.ParseFloat(days, 64); err == nil && !math.IsInf(n, 0) && !math.IsNaN(n) && math.Abs(n) < 100000 {
			return time.Duration(n * float64(24*time.Hour)), nil
		}
	}
	return time.ParseDuration(v)
}

func kindOf(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return "duration like 30s, 5m, 1h or 7d"
	case t.Kind() == reflect.Bool:
		return "boolean (true or false)"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return "whole number"
	}
	return t.String()
}

func varOf(field string) string {
	for _, f := range Fields() {
		if f.field == field {
			return f.Var
		}
	}
	return field
}

func (c *Config) validate(bad *Error) {
	if _, err := route.ParsePatterns(c.Recipients); err != nil {
		bad.add(Prefix + "RECIPIENTS: " + oneLine(err))
	}
	if c.WebhookURL != "" {
		if err := route.ValidEndpoint(c.WebhookURL); err != nil {
			bad.add(Prefix + "WEBHOOK_URL: " + err.Error())
		}
	}
	if _, err := route.ParseRules(c.Routes); err != nil {
		bad.add(Prefix + "ROUTES: " + oneLine(err))
	}
	for i, s := range c.WebhookSecret {
		if err := checkSecret(s); err != nil {
			bad.add(fmt.Sprintf("%sWEBHOOK_SECRET: secret #%d: %v", Prefix, i+1, err))
		}
	}
	if c.AdminToken != "" && strings.IndexFunc(c.AdminToken, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		// A client sends the token after "Bearer ": one that holds
		// blanks or control characters (a newline from a secret file)
		// could never be matched.
		bad.add(Prefix + "ADMIN_TOKEN: must not contain spaces, line breaks or control characters")
	}
	if _, err := ParseStore(c.Store); err != nil {
		bad.add(Prefix + "STORE: " + err.Error())
	}
	if c.S3Endpoint != "" {
		if u, err := url.Parse(c.S3Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad.add(fmt.Sprintf("%sS3_ENDPOINT=%q: want an http:// or https:// URL", Prefix, c.S3Endpoint))
		}
	}
	if _, err := ParseNetworks(c.SessionLimitExceptions); err != nil {
		bad.add(Prefix + "SESSION_LIMIT_EXCEPTIONS: " + err.Error())
	}
	if _, err := ParseNetworks(c.ProxyProtocol); err != nil {
		bad.add(Prefix + "PROXY_PROTOCOL: " + err.Error())
	}
	if c.TLSRequired && c.TLSCertFile == "" {
		bad.add(Prefix + "TLS_REQUIRED=true: needs " + Prefix + "TLS_CERT_FILE and " + Prefix + "TLS_KEY_FILE")
	}
	if c.MaxLineLength < 0 {
		bad.add(fmt.Sprintf("%sMAX_LINE_LENGTH=%d: must not be negative", Prefix, c.MaxLineLength))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad.add(Prefix + "TLS_CERT_FILE and " + Prefix + "TLS_KEY_FILE: set both or neither")
	}
	for _, f := range []struct{ name, path string }{{"TLS_CERT_FILE", c.TLSCertFile}, {"TLS_KEY_FILE", c.TLSKeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			bad.add(fmt.Sprintf("%s%s=%q: cannot read it: %v", Prefix, f.name, f.path, errors.Unwrap(err)))
		}
	}
	oneOf := func(name, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		bad.add(fmt.Sprintf("%s%s=%q: want one of %s", Prefix, name, v, strings.Join(allowed, ", ")))
	}
	oneOf("BARE_NEWLINE", c.BareNewline, "normalize", "reject")
	oneOf("LOG_LEVEL", strings.ToLower(c.LogLevel), "debug", "info", "warn", "error")
	oneOf("LOG_FORMAT", c.LogFormat, "auto", "json", "text")
	addrCheck := func(name, v string) {
		if _, _, err := splitHostPort(v); err != nil {
			bad.add(fmt.Sprintf("%s%s=%q: want host:port or :port", Prefix, name, v))
		}
	}
	addrCheck("SMTP_ADDR", c.SMTPAddr)
	addrCheck("HTTP_ADDR", c.HTTPAddr)
	positive := func(name string, v int64) {
		if v <= 0 {
			bad.add(fmt.Sprintf("%s%s=%d: must be greater than 0", Prefix, name, v))
		}
	}
	positive("MAX_MESSAGE_BYTES", c.MaxMessageBytes)
	positive("MAX_RECIPIENTS", int64(c.MaxRecipients))
	positive("MAX_BAD_COMMANDS", int64(c.MaxBadCommands))
	positive("MAX_SESSIONS", int64(c.MaxSessions))
	positive("MAX_SESSIONS_PER_IP", int64(c.MaxSessionsPerIP))
	if c.DeliveryConcurrency < 0 {
		bad.add(fmt.Sprintf("%sDELIVERY_CONCURRENCY=%d: must not be negative (0 = the store's default)", Prefix, c.DeliveryConcurrency))
	}
	positive("DELIVERY_ENDPOINT_CONCURRENCY", int64(c.DeliveryEndpointConcurrent))
	positive("DELIVERY_MEMORY", c.DeliveryMemory)
	positive("PARSE_MAX_PARTS", int64(c.ParseMaxParts))
	positive("PARSE_MAX_DEPTH", int64(c.ParseMaxDepth))
	if c.EndpointPauseAfter < 0 {
		bad.add(fmt.Sprintf("%sENDPOINT_PAUSE_AFTER=%d: must not be negative", Prefix, c.EndpointPauseAfter))
	}
	if c.MaxAttachmentBytes < 0 {
		bad.add(fmt.Sprintf("%sMAX_ATTACHMENT_BYTES=%d: must not be negative", Prefix, c.MaxAttachmentBytes))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"SMTP_COMMAND_TIMEOUT", c.CommandTimeout}, {"SMTP_DATA_TIMEOUT", c.DataTimeout},
		{"SMTP_SESSION_TIMEOUT", c.SessionTimeout}, {"RETRY_INITIAL", c.RetryInitial},
		{"RETRY_MAX_INTERVAL", c.RetryMaxInterval}, {"RETRY_MAX_ELAPSED", c.RetryMaxElapsed},
		{"DELIVERY_TIMEOUT", c.DeliveryTimeout}, {"QUEUE_SCAN_INTERVAL", c.QueueScanInterval},
		{"PROXY_HEADER_TIMEOUT", c.ProxyHeaderTimeout}, {"LEASE_TTL", c.LeaseTTL},
		{"SMTP_EVICT_IDLE_AFTER", c.EvictIdleAfter}, {"PARSE_TIMEOUT", c.ParseTimeout},
	} {
		if d.v <= 0 {
			bad.add(fmt.Sprintf("%s%s=%s: must be greater than 0", Prefix, d.name, d.v))
		}
	}
	if c.StoreCommitDelay < 0 || c.StoreCommitDelay > time.Second {
		bad.add(fmt.Sprintf("%sSTORE_COMMIT_DELAY=%s: want 0 to 1s", Prefix, c.StoreCommitDelay))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"SHUTDOWN_GRACE", c.ShutdownGrace}, {"RETENTION", c.Retention}, {"FAILED_RETENTION", c.FailedRetention}} {
		if d.v < 0 {
			bad.add(fmt.Sprintf("%s%s=%s: must not be negative", Prefix, d.name, d.v))
		}
	}
	if c.RetryMaxInterval > 0 && c.RetryInitial > c.RetryMaxInterval {
		bad.add(fmt.Sprintf("%sRETRY_INITIAL=%s: larger than %sRETRY_MAX_INTERVAL=%s", Prefix, c.RetryInitial, Prefix, c.RetryMaxInterval))
	}
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

func splitHostPort(v string) (string, string, error) {
	i := strings.LastIndexByte(v, ':')
	if i < 0 {
		return "", "", errors.New("no port")
	}
	port := v[i+1:]
	if port == "" {
		return "", "", errors.New("no port")
	}
	for _, r := range port {
		if r < '0' || r > '9' {
			return "", "", errors.New("bad port")
		}
	}
	return v[:i], port, nil
}

// checkSecret validates a whsec_ secret without printing it.
func checkSecret(s string) error {
	s = strings.TrimSpace(s)
	if s == "" {
		return errors.New("empty")
	}
	return secretDecodes(s)
}

// ParseNetworks parses a comma-separated list of CIDRs (a bare address is
// taken as a single host), reporting every bad item.
func ParseNetworks(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(item); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		errs = append(errs, fmt.Errorf("%q is not a CIDR like 10.0.0.0/8 or an IP address", item))
	}
	return out, errors.Join(errs...)
}

// StoreURL is a parsed MAILHOOK_STORE.
type StoreURL struct {
	Scheme string // "file" or "s3"
	Path   string // file: the directory
	Bucket string // s3
	Prefix string // s3: key prefix without leading or trailing slash
}

// ParseStore parses file:///abs, file://./rel, file:rel or s3://bucket/prefix.
func ParseStore(s string) (StoreURL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return StoreURL{}, fmt.Errorf("%q: %v", s, err)
	}
	switch u.Scheme {
	case "file":
		p := u.Host + u.Path // file://./data has Host "." and Path "/data"
		if u.Opaque != "" {
			p = u.Opaque
		}
		if p == "" {
			return StoreURL{}, fmt.Errorf("%q: no directory; want file:///path or file://./relative", s)
		}
		return StoreURL{Scheme: "file", Path: p}, nil
	case "s3":
		if u.Host == "" {
			return StoreURL{}, fmt.Errorf("%q: no bucket; want s3://bucket/optional/prefix", s)
		}
		return StoreURL{Scheme: "s3", Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}, nil
	}
	return StoreURL{}, fmt.Errorf("%q: want file:///path or s3://bucket/prefix", s)
}
