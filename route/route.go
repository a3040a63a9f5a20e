package route

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
)

// Pattern matches recipient addresses. The forms are:
//
//	user@example.com    that address, and user+anything@example.com
//	*@example.com       every address at example.com (not its subdomains)
//	*@*.example.com     every address at any subdomain of example.com
//	*                   every address
//
// Matching is case-insensitive (RFC 5321 §2.4 lets the receiving domain
// decide; every mail service users know treats local parts that way too).
type Pattern struct {
	local  string // "" = any
	domain string // exact domain, lower case
	suffix bool   // domain is a suffix: ".example.com"
	any    bool
}

// ParsePattern parses one pattern.
func ParsePattern(s string) (Pattern, error) {
	s = strings.TrimSpace(s)
	if s == "*" || s == "*@*" {
		return Pattern{any: true}, nil
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return Pattern{}, fmt.Errorf("pattern %q: want user@domain, *@domain or *@*.domain", s)
	}
	local, domain := strings.ToLower(s[:at]), normDomain(s[at+1:])
	quoted := len(local) >= 2 && local[0] == '"' && local[len(local)-1] == '"'
	if strings.ContainsAny(local, " \t<>") || strings.Contains(local, "@") && !quoted ||
		strings.ContainsAny(domain, " \t<>@") || domain == "" ||
		strings.IndexFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) >= 0 {
		return Pattern{}, fmt.Errorf("pattern %q: not an address", s)
	}
	p := Pattern{local: local}
	if local == "*" {
		p.local = ""
	} else if strings.Contains(local, "*") {
		return Pattern{}, fmt.Errorf("pattern %q: a wildcard stands only for the whole local part", s)
	}
	switch {
	case strings.HasPrefix(domain, "*."):
		p.suffix, p.domain = true, domain[1:]
		if strings.Contains(p.domain[1:], "*") || len(p.domain) < 2 {
			return Pattern{}, fmt.Errorf("pattern %q: bad domain wildcard", s)
		}
	case strings.Contains(domain, "*"):
		return Pattern{}, fmt.Errorf("pattern %q: a domain wildcard is written *@*.example.com", s)
	default:
		p.domain = domain
	}
	return p, nil
}

// normDomain returns the domain d as patterns and addresses are compared:
// lower case, no root dot, and each internationalised label as its ASCII
// form (RFC 5890 A-label, "bücher" → "xn--bcher-kva"): clients send the
// one form (any client without SMTPUTF8, curl always) or the other, and
// a pattern written either way must match both.
func normDomain(d string) string {
	d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
	if isASCII(d) {
		return d
	}
	labels := strings.Split(d, ".")
	for i, l := range labels {
		if isASCII(l) {
			continue
		}
		if a, err := idna.Lookup.ToASCII(l); err == nil {
			labels[i] = a
		}
	}
	return strings.Join(labels, ".")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// Match reports whether addr (no angle brackets) matches the pattern.
func (p Pattern) Match(addr string) bool {
	if p.any {
		return true
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false // "postmaster" without a domain has no match but "*"
	}
	if !p.matchDomain(normDomain(addr[at+1:])) {
		return false
	}
	if p.local == "" {
		return true
	}
	local := strings.ToLower(addr[:at])
	if local == p.local {
		return true
	}
	// Subaddressing: user+tag matches user, unless the pattern names a tag.
	if plus := strings.IndexByte(local, '+'); plus > 0 && !strings.Contains(p.local, "+") {
		return local[:plus] == p.local
	}
	return false
}

// matchDomain reports whether the pattern accepts mail at domain (lower
// case, no trailing dot) for some local part.
func (p Pattern) matchDomain(domain string) bool {
	switch {
	case p.any:
		return true
	case p.suffix:
		return strings.HasSuffix(domain, p.domain)
	}
	return domain == p.domain
}

// String returns the pattern in its canonical written form.
func (p Pattern) String() string {
	if p.any {
		return "*"
	}
	local := p.local
	if local == "" {
		local = "*"
	}
	if p.suffix {
		return local + "@*" + p.domain
	}
	return local + "@" + p.domain
}

// ParsePatterns parses a comma-separated list; blanks are skipped. It reports
// every bad pattern, not just the first.
func ParsePatterns(list string) ([]Pattern, error) {
	var ps []Pattern
	var errs []error
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		p, err := ParsePattern(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ps = append(ps, p)
	}
	return ps, errors.Join(errs...)
}

// Policy is the recipient policy: an address is accepted if it matches any
// pattern, or always when there are none. Postmaster is accepted at every
// domain a pattern serves and at the server's own name, whatever the
// patterns say of its local part: RFC 5321 §4.5.1 requires it.
type Policy struct {
	patterns []Pattern
	hostname string // lower case, no trailing dot
}

// NewPolicy returns a policy over patterns for a server named hostname;
// no patterns means accept everything.
func NewPolicy(patterns []Pattern, hostname string) *Policy {
	return &Policy{patterns: patterns, hostname: normDomain(hostname)}
}

// AcceptsAll reports whether the policy accepts any address.
func (p *Policy) AcceptsAll() bool { return len(p.patterns) == 0 }

// Allow reports whether mail for addr is accepted.
func (p *Policy) Allow(addr string) bool {
	if len(p.patterns) == 0 {
		return true
	}
	for _, pat := range p.patterns {
		if pat.Match(addr) {
			return true
		}
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || !strings.EqualFold(addr[:at], "postmaster") {
		return false
	}
	domain := normDomain(addr[at+1:])
	if domain == p.hostname {
		return true
	}
	for _, pat := range p.patterns {
		if pat.matchDomain(domain) {
			return true
		}
	}
	return false
}

// Rule sends the recipients matching Pattern to Endpoint.
type Rule struct {
	Pattern  Pattern
	Endpoint string
}

// Table maps recipients to webhook endpoints: the first matching rule wins,
// then the default endpoint ("" when none is configured).
type Table struct {
	rules    []Rule
	fallback string
}

// NewTable returns a routing table.
func NewTable(rules []Rule, fallback string) *Table {
	return &Table{rules: rules, fallback: fallback}
}

// Route returns the endpoint for rcpt, or "" when none applies.
func (t *Table) Route(rcpt string) string {
	for _, r := range t.rules {
		if r.Pattern.Match(rcpt) {
			return r.Endpoint
		}
	}
	return t.fallback
}

// Endpoints lists every distinct endpoint the table can return.
func (t *Table) Endpoints() []string {
	var out []string
	seen := map[string]bool{"": true}
	for _, r := range append(t.rules, Rule{Endpoint: t.fallback}) {
		if !seen[r.Endpoint] {
			seen[r.Endpoint] = true
			out = append(out, r.Endpoint)
		}
	}
	return out
}

// ParseRules parses MAILHOOK_ROUTES: "pattern=url" pairs separated by ";".
// It reports every bad pair.
func ParseRules(s string) ([]Rule, error) {
	var rules []Rule
	var errs []error
	for _, pair := range strings.Split(s, ";") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		pat, u, ok := strings.Cut(pair, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("route %q: want pattern=url", strings.TrimSpace(pair)))
			continue
		}
		u = strings.TrimSpace(u)
		shown := strings.TrimSpace(pat) + "=" + RedactURL(u) // the URL may hold a password
		p, err := ParsePattern(pat)
		if err != nil {
			errs = append(errs, fmt.Errorf("route %q: %w", shown, err))
			continue
		}
		if err := ValidEndpoint(u); err != nil {
			errs = append(errs, fmt.Errorf("route %q: %w", shown, err))
			continue
		}
		rules = append(rules, Rule{Pattern: p, Endpoint: u})
	}
	return rules, errors.Join(errs...)
}

// ValidEndpoint checks that u is an absolute http or https URL with a host.
func ValidEndpoint(u string) error {
	pu, err := url.Parse(u)
	if err != nil {
		if strings.Contains(u, "@") {
			// The parser's words would quote a part of the userinfo.
			return fmt.Errorf("endpoint %q: not a valid URL (percent-encode any / ? # or @ in a user name or password)", RedactURL(u))
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a token
		}
		return fmt.Errorf("endpoint %q: %v", RedactURL(u), err)
	}
	if pu.Scheme != "http" && pu.Scheme != "https" || pu.Hostname() == "" {
		return fmt.Errorf("endpoint %q: want an http:// or https:// URL with a host", RedactURL(u))
	}
	if p := pu.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("endpoint %q: port %s: want 1 to 65535", RedactURL(u), p)
		}
	}
	if pu.Fragment != "" {
		return fmt.Errorf("endpoint %q: a fragment is never sent; remove it", RedactURL(u))
	}
	return nil
}

// RedactURL returns the endpoint URL u as it may be shown (configuration
// print-outs, errors, the admin API): its userinfo's password, or its user
// name when it has no password (a token sent as Basic auth), the values
// of its query, where tokens go, and any fragment replaced by "xxxxx".
// An unparseable u (a password holding an unescaped "/", "?" or "#"
// breaks parsing) shows "xxxxx" for everything up to its last "@", and
// nothing from its query or fragment on.
func RedactURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil || strings.Contains(pu.Opaque, "@") { // "user:pw@host" reads as scheme "user"
		return redactUnparsed(u)
	}
	if pu.User != nil {
		if _, ok := pu.User.Password(); ok {
			pu.User = url.UserPassword(pu.User.Username(), "xxxxx")
		} else {
			pu.User = url.User("xxxxx")
		}
	}
	if pu.RawQuery != "" {
		q := pu.Query()
		for k := range q {
			q[k] = []string{"xxxxx"}
		}
		pu.RawQuery = q.Encode()
	}
	if pu.Fragment != "" || pu.RawFragment != "" {
		pu.Fragment, pu.RawFragment = "xxxxx", ""
	}
	return pu.String()
}

// redactUnparsed is RedactURL for a u url.Parse refuses.
func redactUnparsed(u string) string {
	start := 0
	if i := strings.Index(u, "://"); i >= 0 {
		start = i + 3
	}
	head := u[:start]
	rest := u[start:]
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		head += "xxxxx"
		rest = rest[at:]
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	return head + rest
}

// RedactRoutes is MAILHOOK_ROUTES with each URL redacted (RedactURL).
func RedactRoutes(s string) string {
	pairs := strings.Split(s, ";")
	for i, p := range pairs {
		if pat, u, ok := strings.Cut(p, "="); ok {
			pairs[i] = pat + "=" + RedactURL(strings.TrimSpace(u))
		}
	}
	return strings.Join(pairs, ";")
}
