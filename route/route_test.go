package route

import (
	"strings"
	"testing"
)

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern string
		addr    string
		want    bool
	}{
		{"user@example.com", "user@example.com", true},
		{"user@example.com", "USER@Example.COM", true},
		{"User@Example.com", "user@example.com", true},
		{"user@example.com", "user+tag@example.com", true},
		{"user@example.com", "user+@example.com", true},
		{"user@example.com", "user@example.com.", true},
		{"user@example.com", "other@example.com", false},
		{"user@example.com", "user@sub.example.com", false},
		{"user@example.com", "users@example.com", false},
		{"user@example.com", "+user@example.com", false},
		{"user+sales@example.com", "user+sales@example.com", true},
		{"user+sales@example.com", "user@example.com", false},
		{"user+sales@example.com", "user+other@example.com", false},
		{"*@example.com", "anyone@example.com", true},
		{"*@example.com", "anyone@EXAMPLE.com", true},
		{"*@example.com", "anyone@sub.example.com", false},
		{"*@example.com", "anyone@badexample.com", false},
		{"*@*.example.com", "a@sub.example.com", true},
		{"*@*.example.com", "a@deep.sub.example.com", true},
		{"*@*.example.com", "a@example.com", false},
		{"*@*.example.com", "a@badexample.com", false},
		{"*", "whoever@wherever", true},
		{"*@*", "whoever@wherever", true},
		// An internationalised domain matches in either form (RFC 5890).
		{"*@bücher.example", "a@xn--bcher-kva.example", true},
		{"*@xn--bcher-kva.example", "a@bücher.example", true},
		{"*@bücher.example", "a@BÜCHER.example", true},
		{"*@*.bücher.example", "a@shop.xn--bcher-kva.example", true},
		{"jöran@café.example", "jöran@xn--caf-dma.example", true},
		{"*@bücher.example", "a@bucher.example", false},
		{"user@example.com", "postmaster", false},
		{"user@example.com", "", false},
	}
	for _, tc := range tests {
		p, err := ParsePattern(tc.pattern)
		if err != nil {
			t.Fatalf("ParsePattern(%q): %v", tc.pattern, err)
		}
		if got := p.Match(tc.addr); got != tc.want {
			t.Errorf("%q.Match(%q) = %v, want %v", tc.pattern, tc.addr, got, tc.want)
		}
	}
}

func TestParsePatternErrors(t *testing.T) {
	for _, s := range []string{"", "example.com", "@example.com", "user@", "us*er@example.com", "*@ex*ample.com", "a b@example.com", "*@*.", "a@@b", "a@b@example.com", "a\x01@example.com"} {
		if _, err := ParsePattern(s); err == nil {
			t.Errorf("ParsePattern(%q) accepted a bad pattern", s)
		}
	}
}

func TestParsePatternsReportsEvery(t *testing.T) {
	ps, err := ParsePatterns(" a@x.com, bad, *@y.org ,, also-bad ")
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{`"bad"`, `"also-bad"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if len(ps) != 2 || ps[0].String() != "a@x.com" || ps[1].String() != "*@y.org" {
		t.Errorf("good patterns = %v", ps)
	}
}

func TestPolicy(t *testing.T) {
	open := NewPolicy(nil, "mx.example.net")
	if !open.AcceptsAll() || !open.Allow("x@y") {
		t.Error("empty policy must accept all")
	}
	ps, err := ParsePatterns("sales@a.com,*@b.com,*@*.d.org")
	if err != nil {
		t.Fatal(err)
	}
	p := NewPolicy(ps, "MX.example.net.")
	for addr, want := range map[string]bool{
		"sales@a.com": true, "sales+q4@A.com": true, "other@a.com": false,
		"x@b.com": true, "x@c.com": false,
		// RFC 5321 §4.5.1: postmaster at every domain served, and at
		// the server's own name (where "<Postmaster>" alone leads).
		"postmaster@a.com": true, "PostMaster@A.COM.": true,
		"postmaster@mx.example.net": true, "postmaster@eu.d.org": true,
		"postmaster@c.com": false, "postmaster@d.org": false,
		"postmaster+x@a.com": false, "postmaster": false,
	} {
		if got := p.Allow(addr); got != want {
			t.Errorf("Allow(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestTable(t *testing.T) {
	rules, err := ParseRules("support@a.com=https://h.example/support; *@a.com=https://h.example/a?x=1;")
	if err != nil {
		t.Fatal(err)
	}
	tab := NewTable(rules, "https://h.example/default")
	for rcpt, want := range map[string]string{
		"support@a.com":     "https://h.example/support",
		"support+x@a.com":   "https://h.example/support",
		"sales@a.com":       "https://h.example/a?x=1",
		"someone@other.com": "https://h.example/default",
	} {
		if got := tab.Route(rcpt); got != want {
			t.Errorf("Route(%q) = %q, want %q", rcpt, got, want)
		}
	}
	if got := NewTable(rules, "").Route("x@none.com"); got != "" {
		t.Errorf("no default: Route = %q, want empty", got)
	}
	if eps := tab.Endpoints(); len(eps) != 3 {
		t.Errorf("Endpoints = %v", eps)
	}
}

func TestParseRulesErrors(t *testing.T) {
	_, err := ParseRules("a@b.com; x@y.com=ftp://h/; z@y.com=https://h/ok; bad=https://h/")
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"want pattern=url", "ftp://h/", `"bad"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func FuzzPattern(f *testing.F) {
	for _, s := range []string{"user@example.com", "*@*.example.com", "*", "a+b@c", "@", "*@*."} {
		f.Add(s, "user+tag@sub.example.com")
	}
	f.Fuzz(func(t *testing.T, pattern, addr string) {
		p, err := ParsePattern(pattern)
		if err != nil {
			return
		}
		got := p.Match(addr)
		// The canonical form must parse to a pattern that decides the same.
		q, err := ParsePattern(p.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", p.String(), pattern, err)
		}
		if q.Match(addr) != got {
			t.Fatalf("%q and its canonical form %q disagree on %q", pattern, p.String(), addr)
		}
	})
}

func TestValidEndpoint(t *testing.T) {
	for _, good := range []string{"https://hooks.example.com/in", "http://127.0.0.1:8080/x?y=1", "http://[::1]:65535/", "https://u:p@h.example/"} {
		if err := ValidEndpoint(good); err != nil {
			t.Errorf("ValidEndpoint(%q): %v", good, err)
		}
	}
	for _, bad := range []string{"ftp://h/x", "http:///x", "http://:80/x", "http://127.0.0.1:99999/x", "http://h:0/x", "http://h/x#frag",
		"https://alice:S3cret@h.example:99999/x", "https://alice:S3cret@[::1/x"} {
		err := ValidEndpoint(bad)
		if err == nil {
			t.Errorf("ValidEndpoint(%q) accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "S3cret") {
			t.Errorf("ValidEndpoint(%q): the error shows the password: %v", bad, err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.example.com/in":              "https://hooks.example.com/in",
		"https://alice:pw@h.example/in?token=t&a=b": "https://alice:xxxxx@h.example/in?a=xxxxx&token=xxxxx",
		"https://alice:pw@[::1/x?token=t":           "https://xxxxx@[::1/x",
		"https://ghp_T0KEN@h.example/in":            "https://xxxxx@h.example/in", // a token as the user name
		"https://tok#en@h.example/in":               "https://tok#xxxxx",          // parsed as host "tok"
		"http://alice:PA#SS@h.example/x":            "http://xxxxx@h.example/x",
		"https://alice:pa?ss@h.example/x?token=t":   "https://xxxxx@h.example/x",
		"https://alice:pa/ss@h.example/x":           "https://xxxxx@h.example/x",
		"alice:pw@h.example":                        "xxxxx@h.example",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// An endpoint URL that does not parse because of what its password holds
// is refused without a part of the password in the error (the parser's
// own words would quote it).
func TestValidEndpointErrorsRedacted(t *testing.T) {
	for _, u := range []string{
		"http://alice:S3#CR@h.example/x", "https://alice:S3?CR@h.example/x", "https://alice:S3/CR@h.example/x",
		"https://ghp_S3CR@h.example:99999/x", "https://alice:S3CR@h.example/x#frag", "alice:S3CR@h.example",
	} {
		err := ValidEndpoint(u)
		if err == nil || strings.Contains(err.Error(), "S3") || strings.Contains(err.Error(), "CR") {
			t.Errorf("ValidEndpoint(%q) = %v", u, err)
		}
	}
}

// A bad route is named in the error without the password of its URL.
func TestParseRulesErrorsRedacted(t *testing.T) {
	_, err := ParseRules("a@example.com=https://alice:S3cret@h.example:99999/x;bad pattern=https://bob:B0b@h.example/")
	if err == nil || strings.Contains(err.Error(), "S3cret") || strings.Contains(err.Error(), "B0b") ||
		!strings.Contains(err.Error(), "a@example.com=https://alice:xxxxx@h.example:99999/x") {
		t.Errorf("ParseRules error: %v", err)
	}
}
