package deploy_test

import (
	"fmt"
	"strings"
)

// The module has no YAML or TOML parser it could import without changing
// go.mod, so these tests carry small readers for the subset of YAML and TOML
// the manifests here use. They fail loudly on anything outside that subset,
// naming the file and line, rather than guess.

// line is one meaningful source line: comment stripped, not blank.
type line struct {
	n      int // 1-based line number
	indent int
	text   string // without indentation
}

// stripComment cuts a # comment that starts a line or follows whitespace,
// outside quotes (YAML and TOML rules for the forms used here).
func stripComment(s string) string {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return strings.TrimRight(s[:i], " \t")
		}
	}
	return strings.TrimRight(s, " \t")
}

// yamlDocs parses a YAML stream into documents made of map[string]any,
// []any and string (every scalar stays a string; null is nil).
func yamlDocs(src string) ([]any, error) {
	var docs [][]line
	var cur []line
	for i, raw := range strings.Split(src, "\n") {
		if strings.ContainsRune(raw, '\t') && strings.TrimLeft(raw, " ") != strings.TrimLeft(raw, " \t") {
			return nil, fmt.Errorf("line %d: tab in indentation", i+1)
		}
		if strings.TrimRight(raw, " ") == "---" {
			docs = append(docs, cur)
			cur = nil
			continue
		}
		text := stripComment(raw)
		t := strings.TrimLeft(text, " ")
		if t == "" {
			continue
		}
		cur = append(cur, line{n: i + 1, indent: len(text) - len(t), text: t})
	}
	docs = append(docs, cur)
	var out []any
	for _, d := range docs {
		if len(d) == 0 {
			continue
		}
		p := &yamlParser{lines: d, anchors: map[string]any{}}
		v, err := p.node(d[0].indent)
		if err != nil {
			return nil, err
		}
		if p.i < len(p.lines) {
			return nil, fmt.Errorf("line %d: unexpected indentation", p.lines[p.i].n)
		}
		out = append(out, v)
	}
	return out, nil
}

type yamlParser struct {
	lines   []line
	i       int
	anchors map[string]any
}

func isSeqItem(t string) bool { return t == "-" || strings.HasPrefix(t, "- ") }

func (p *yamlParser) node(indent int) (any, error) {
	if isSeqItem(p.lines[p.i].text) {
		return p.sequence(indent)
	}
	return p.mapping(indent)
}

func (p *yamlParser) mapping(indent int) (any, error) {
	m := map[string]any{}
	for p.i < len(p.lines) {
		l := p.lines[p.i]
		if l.indent < indent || (l.indent == indent && isSeqItem(l.text)) {
			break
		}
		if l.indent > indent {
			return nil, fmt.Errorf("line %d: unexpected indentation", l.n)
		}
		key, rest, ok := splitKey(l.text)
		if !ok {
			return nil, fmt.Errorf("line %d: want key: value, got %q", l.n, l.text)
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("line %d: duplicate key %q", l.n, key)
		}
		p.i++
		v, err := p.value(rest, indent, l.n)
		if err != nil {
			return nil, err
		}
		m[key] = v
	}
	return m, nil
}

func (p *yamlParser) sequence(indent int) (any, error) {
	var s []any
	for p.i < len(p.lines) {
		l := p.lines[p.i]
		if l.indent < indent || !isSeqItem(l.text) {
			break
		}
		if l.indent > indent {
			return nil, fmt.Errorf("line %d: unexpected indentation", l.n)
		}
		rest := strings.TrimLeft(strings.TrimPrefix(l.text, "-"), " ")
		if _, _, isMap := splitKey(rest); isMap && rest != "" {
			// "- key: value" opens a mapping whose keys sit at the
			// column of "key".
			p.lines[p.i] = line{n: l.n, indent: l.indent + len(l.text) - len(rest), text: rest}
			v, err := p.mapping(p.lines[p.i].indent)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
			continue
		}
		p.i++
		v, err := p.value(rest, indent, l.n)
		if err != nil {
			return nil, err
		}
		s = append(s, v)
	}
	return s, nil
}

// value reads what follows "key:" or "- ": a scalar on the same line, or a
// nested block on the next lines.
func (p *yamlParser) value(rest string, indent, n int) (any, error) {
	var anchor string
	if strings.HasPrefix(rest, "&") {
		name, after, _ := strings.Cut(rest[1:], " ")
		anchor, rest = name, strings.TrimSpace(after)
	}
	var v any
	switch {
	case strings.HasPrefix(rest, "*"):
		a, ok := p.anchors[rest[1:]]
		if !ok {
			return nil, fmt.Errorf("line %d: unknown alias %s", n, rest)
		}
		v = a
	case rest == "|" || rest == ">" || rest == "|-" || rest == ">-":
		var b []string
		for p.i < len(p.lines) && p.lines[p.i].indent > indent {
			b = append(b, p.lines[p.i].text)
			p.i++
		}
		v = strings.Join(b, "\n")
	case rest == "":
		switch {
		case p.i < len(p.lines) && p.lines[p.i].indent > indent:
			nv, err := p.node(p.lines[p.i].indent)
			if err != nil {
				return nil, err
			}
			v = nv
		case p.i < len(p.lines) && p.lines[p.i].indent == indent && isSeqItem(p.lines[p.i].text):
			nv, err := p.sequence(indent) // "key:\n- item" at the same column
			if err != nil {
				return nil, err
			}
			v = nv
		}
	default:
		sv, err := flowOrScalar(rest)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", n, err)
		}
		v = sv
	}
	if anchor != "" {
		p.anchors[anchor] = v
	}
	return v, nil
}

// splitKey splits "key: rest" (or "key:") outside quotes and brackets.
func splitKey(t string) (key, rest string, ok bool) {
	var quote byte
	depth := 0
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			if i == 0 {
				quote = c
			}
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth--
		case c == ':' && depth == 0 && (i == len(t)-1 || t[i+1] == ' '):
			k, err := scalar(strings.TrimSpace(t[:i]))
			if err != nil {
				return "", "", false
			}
			return k, strings.TrimSpace(t[i+1:]), true
		}
	}
	return "", "", false
}

func flowOrScalar(s string) (any, error) {
	switch {
	case strings.HasPrefix(s, "["):
		if !strings.HasSuffix(s, "]") {
			return nil, fmt.Errorf("unterminated flow sequence %q", s)
		}
		inner := strings.TrimSpace(s[1 : len(s)-1])
		out := []any{}
		if inner == "" {
			return out, nil
		}
		for _, part := range splitFlow(inner) {
			v, err := scalar(strings.TrimSpace(part))
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case strings.HasPrefix(s, "{"):
		if !strings.HasSuffix(s, "}") {
			return nil, fmt.Errorf("unterminated flow mapping %q", s)
		}
		inner := strings.TrimSpace(s[1 : len(s)-1])
		out := map[string]any{}
		if inner == "" {
			return out, nil
		}
		for _, part := range splitFlow(inner) {
			k, v, ok := splitKey(strings.TrimSpace(part))
			if !ok {
				return nil, fmt.Errorf("bad flow mapping entry %q", part)
			}
			sv, err := scalar(v)
			if err != nil {
				return nil, err
			}
			out[k] = sv
		}
		return out, nil
	}
	return scalar(s)
}

// splitFlow splits on commas outside quotes.
func splitFlow(s string) []string {
	var parts []string
	var quote byte
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == ',':
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func scalar(s string) (string, error) {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') {
		if s[len(s)-1] != s[0] {
			return "", fmt.Errorf("unterminated quoted scalar %s", s)
		}
		inner := s[1 : len(s)-1]
		if s[0] == '\'' {
			return strings.ReplaceAll(inner, "''", "'"), nil
		}
		if strings.Contains(inner, `\`) {
			return "", fmt.Errorf("escapes in %s are not supported by this reader", s)
		}
		return inner, nil
	}
	if strings.HasPrefix(s, "&") || strings.HasPrefix(s, "!") || strings.HasPrefix(s, "<<") {
		return "", fmt.Errorf("unsupported YAML construct %q", s)
	}
	return s, nil
}

// tomlDoc reads the TOML subset of fly.toml: [table], [[array.of.tables]],
// and key = value with strings, integers, booleans and inline arrays. Keys
// come back as dotted paths; an array of tables gets an index:
// "services.0.ports.0.port".
func tomlDoc(src string) (map[string]string, error) {
	out := map[string]string{}
	counts := map[string]int{} // array-of-tables path -> number of elements
	current := ""
	// resolve turns a header path into its indexed form, using the latest
	// element of each array of tables along it.
	resolve := func(path string) string {
		parts := strings.Split(path, ".")
		var b []string
		for i, part := range parts {
			b = append(b, part)
			if n, ok := counts[strings.Join(parts[:i+1], ".")]; ok {
				b = append(b, fmt.Sprint(n-1))
			}
		}
		return strings.Join(b, ".")
	}
	for i, raw := range strings.Split(src, "\n") {
		t := strings.TrimSpace(stripComment(raw))
		switch {
		case t == "":
		case strings.HasPrefix(t, "[["):
			if !strings.HasSuffix(t, "]]") {
				return nil, fmt.Errorf("line %d: bad header %q", i+1, t)
			}
			path := strings.TrimSpace(t[2 : len(t)-2])
			counts[path]++
			current = resolve(path)
		case strings.HasPrefix(t, "["):
			if !strings.HasSuffix(t, "]") {
				return nil, fmt.Errorf("line %d: bad header %q", i+1, t)
			}
			current = resolve(strings.TrimSpace(t[1 : len(t)-1]))
		default:
			k, v, ok := strings.Cut(t, "=")
			if !ok {
				return nil, fmt.Errorf("line %d: want key = value, got %q", i+1, t)
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			val, err := tomlValue(v)
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", i+1, err)
			}
			full := k
			if current != "" {
				full = current + "." + k
			}
			if _, dup := out[full]; dup {
				return nil, fmt.Errorf("line %d: duplicate key %s", i+1, full)
			}
			out[full] = val
		}
	}
	return out, nil
}

func tomlValue(v string) (string, error) {
	switch {
	case strings.HasPrefix(v, `"`):
		if len(v) < 2 || !strings.HasSuffix(v, `"`) || strings.Contains(v[1:len(v)-1], `"`) {
			return "", fmt.Errorf("unsupported string %s", v)
		}
		return v[1 : len(v)-1], nil
	case strings.HasPrefix(v, "["):
		if !strings.HasSuffix(v, "]") {
			return "", fmt.Errorf("multi-line arrays are not supported: %s", v)
		}
		return v, nil
	case v == "true" || v == "false":
		return v, nil
	}
	for _, r := range v {
		if r < '0' || r > '9' {
			return "", fmt.Errorf("unsupported value %s", v)
		}
	}
	if v == "" {
		return "", fmt.Errorf("empty value")
	}
	return v, nil
}
