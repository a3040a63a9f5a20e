package config

import (
	"slices"
	"strings"
)

// Unknown returns a warning for each variable in environ (os.Environ
// form, NAME=value) that carries Prefix but is none of Fields nor
// alsoKnown, naming the closest known variable when one is near: a
// misspelt MAILHOOK_WEBHOOK_SECRET would otherwise leave webhooks
// unsigned without a word. The variables are ignored, not refused, so
// that a configuration written for a newer release still starts.
func Unknown(environ []string, alsoKnown ...string) []string {
	known := make([]string, 0, len(Fields())+len(alsoKnown))
	for _, f := range Fields() {
		known = append(known, f.Var)
	}
	known = append(known, alsoKnown...)
	var names []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, Prefix) && !slices.Contains(known, name) && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var out []string
	for _, name := range names {
		w := name + " is not a mailhook variable: ignored"
		if s := closest(name, known); s != "" {
			w += " (did you mean " + s + "?)"
		}
		out = append(out, w)
	}
	return out
}

// closest returns the known name nearest to name, if it is within a
// third of its length in edits (at most 4), or "".
func closest(name string, known []string) string {
	best, bestD := "", min(4, len(name)/3)+1
	for _, k := range known {
		if d := editDistance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
