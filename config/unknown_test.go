package config

import (
	"slices"
	"testing"
)

func TestUnknown(t *testing.T) {
	environ := []string{
		"PATH=/usr/bin",
		"MAILHOOK_WEBHOOK_SECRET=whsec_x",    // known
		"MAILHOOK_WEBHOOK_SECRETS=whsec_y",   // one letter too many
		"MAILHOOK_SMTPADDR=:25",              // underscore missing
		"MAILHOOK_SOMETHING_ELSE_ENTIRELY=1", // nothing near
		"MAILHOOK_PPROF_ADDR=127.0.0.1:6060", // known through alsoKnown
		"MAILHOOK_WEBHOOK_SECRETS=again",     // listed once
		"mailhook_store=lowercase",           // not ours: names are case-sensitive
		"MAILHOOK_NOEQUALS",
	}
	got := Unknown(environ, "MAILHOOK_PPROF_ADDR")
	want := []string{
		"MAILHOOK_NOEQUALS is not a mailhook variable: ignored",
		"MAILHOOK_SMTPADDR is not a mailhook variable: ignored (did you mean MAILHOOK_SMTP_ADDR?)",
		"MAILHOOK_SOMETHING_ELSE_ENTIRELY is not a mailhook variable: ignored",
		"MAILHOOK_WEBHOOK_SECRETS is not a mailhook variable: ignored (did you mean MAILHOOK_WEBHOOK_SECRET?)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Unknown =\n%q\nwant\n%q", got, want)
	}
	var all []string
	for _, f := range Fields() {
		all = append(all, f.Var+"=x")
	}
	if got := Unknown(all); got != nil {
		t.Errorf("every known variable: Unknown = %q, want none", got)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"kitten", "sitting", 3},
		{"MAILHOOK_STORE", "MAILHOOK_STORE", 0}, {"MAILHOOK_STOER", "MAILHOOK_STORE", 2},
	} {
		if d := editDistance(tc.a, tc.b); d != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
	}
}
