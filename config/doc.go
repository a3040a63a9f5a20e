// Package config is mailhook's configuration: one typed struct read once
// from MAILHOOK_* environment variables with caarlos0/env, validated as a
// whole (every bad variable is named, not just the first), printable with
// secrets redacted, and described by a help table generated from the struct
// so documentation cannot drift.
//
// It never reads the process environment itself: callers pass a lookup
// function, so tests and the composition root decide where values come from.
package config
