package queue

import (
	"errors"
	"strings"
	"time"
)

// ParseSince reads the --since / "since" filter of a replay: a duration back
// from now ("24h", "90m", "7d") or an RFC 3339 time.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if d, err := time.ParseDuration(days + "h"); err == nil && d >= 0 {
			return now.Add(-24 * d), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, errors.New("want a duration (24h, 90m, 7d) or an RFC 3339 time (2026-11-28T12:00:00Z)")
}
