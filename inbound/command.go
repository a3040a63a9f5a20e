package inbound

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Command line limits.
const (
	// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including
	// the verb and the CRLF.
	maxCommandLine = 512
	// Extensions may lengthen MAIL: RFC 1870 §3 (SIZE) +26, RFC 6152 §3
	// (BODY=) +16, RFC 6531 §3.4 (SMTPUTF8) +10. We do not advertise AUTH,
	// so RFC 4954's +500 does not apply.
	maxMailLine = maxCommandLine + 26 + 16 + 10
	// RFC 5321 §4.5.3.1.2-3: domain 255, path 256 octets (the path counts
	// its angle brackets); its local part limit (64) is not applied.
	maxDomain = 255
	maxPath   = 256
	maxVerb   = 16
)

// command is one parsed command line: the verb upper-cased (RFC 5321 §2.4:
// verbs are case-insensitive) and its arguments with surrounding spaces
// trimmed.
type command struct {
	verb string
	args string
}

// String formats c as a command line without its CRLF; parseCommand of the
// result gives c back.
func (c command) String() string {
	if c.args == "" {
		return c.verb
	}
	return c.verb + " " + c.args
}

// parseCommand splits a command line (terminator removed) into verb and
// arguments. It reports false when the line has no well-formed verb.
func parseCommand(line []byte) (command, bool) {
	end := len(line)
	for i, c := range line {
		if c == ' ' {
			end = i
			break
		}
	}
	verb := line[:end]
	if len(verb) == 0 || len(verb) > maxVerb {
		return command{}, false
	}
	var vb [maxVerb]byte
	for i, c := range verb {
		switch {
		case 'A' <= c && c <= 'Z':
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		default:
			return command{}, false
		}
		vb[i] = c
	}
	cmd := command{verb: verbString(vb[:len(verb)])}
	if end < len(line) {
		// RFC 5321 §4.1.1 wants exactly one SP; be liberal and trim, real
		// clients send trailing blanks.
		cmd.args = strings.Trim(string(line[end+1:]), " \t")
	}
	return cmd, true
}

// verbString returns the verb, without allocating for the known ones.
func verbString(b []byte) string {
	switch string(b) {
	case "EHLO":
		return "EHLO"
	case "HELO":
		return "HELO"
	case "MAIL":
		return "MAIL"
	case "RCPT":
		return "RCPT"
	case "DATA":
		return "DATA"
	case "BDAT":
		return "BDAT"
	case "RSET":
		return "RSET"
	case "NOOP":
		return "NOOP"
	case "QUIT":
		return "QUIT"
	case "VRFY":
		return "VRFY"
	case "HELP":
		return "HELP"
	case "STARTTLS":
		return "STARTTLS"
	}
	return string(b)
}

// param is one ESMTP parameter (RFC 5321 §4.1.2 esmtp-param).
type param struct {
	key      string // upper-cased keyword
	value    string
	hasValue bool
}

// pathCommand holds the parsed arguments of MAIL or RCPT.
type pathCommand struct {
	// addr is the mailbox without angle brackets and without a source
	// route; "" for the null reverse-path "<>".
	addr     string
	params   []param
	nonASCII bool // addr holds octets above 0x7f (RFC 6531)
}

// format renders p behind prefix ("FROM:" or "TO:"); parsePath of the
// result gives p back.
func (p pathCommand) format(prefix string) string {
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteByte('<')
	b.WriteString(p.addr)
	b.WriteByte('>')
	for _, pa := range p.params {
		b.WriteByte(' ')
		b.WriteString(pa.key)
		if pa.hasValue {
			b.WriteByte('=')
			b.WriteString(pa.value)
		}
	}
	return b.String()
}

// pathKind selects the grammar and replies of parsePath.
type pathKind int

const (
	reversePath pathKind = iota // MAIL FROM: RFC 5321 §4.1.2 Reverse-path
	forwardPath                 // RCPT TO: Forward-path
)

// bareMailbox parses a path sent without its angle brackets,
// "MAIL FROM:a@b.c": old scripts and devices (printers that scan to mail)
// send it, and Postfix (strict_rfc821_envelopes = no, its default), Exim
// and Sendmail take it. Only a whole mailbox is taken so; anything else
// gets the syntax reply.
func bareMailbox(s, prefix string, kind pathKind, syntax reply) (pathCommand, reply, bool) {
	mailbox, params, hasParams := strings.Cut(strings.ReplaceAll(s, "\t", " "), " ")
	if strings.ContainsAny(mailbox, "<>\"") {
		return pathCommand{}, syntax, false
	}
	path := prefix + "<" + mailbox + ">"
	if hasParams {
		path += " " + params
	}
	p, r, ok := parsePath(path, kind)
	if !ok {
		return pathCommand{}, syntax, false
	}
	return p, r, true
}

// parsePath parses the arguments of MAIL ("FROM:<path> params") or RCPT
// ("TO:<path> params") per RFC 5321 §4.1.2 as extended by RFC 6531 §3.3.
// On failure it returns the reply to send.
func parsePath(args string, kind pathKind) (pathCommand, reply, bool) {
	prefix, syntax, badAddr, tooLong := "FROM:", replyMailSyntax, replySenderSyntax, replySenderTooLong
	if kind == forwardPath {
		prefix, syntax, badAddr, tooLong = "TO:", replyRcptSyntax, replyRecipientSyntax, replyRecipientTooLong
	}
	var p pathCommand
	if len(args) < len(prefix) || !strings.EqualFold(args[:len(prefix)], prefix) {
		return p, syntax, false
	}
	s := args[len(prefix):]
	// Tolerate "MAIL FROM: <a@b>", and tabs where RFC 5321 wants one
	// space: real clients send them (Postfix and Exim accept them too).
	s = strings.TrimLeft(s, " \t")
	if len(s) == 0 {
		return p, syntax, false
	}
	if s[0] != '<' {
		return bareMailbox(s, prefix, kind, syntax)
	}
	i := 1
	// RFC 5321 §4.1.2 / §C: a source route (A-d-l ":") is accepted and
	// ignored.
	if i < len(s) && s[i] == '@' {
		j := strings.IndexByte(s[i:], ':')
		if j < 0 {
			return p, badAddr, false
		}
		for _, hop := range strings.Split(s[i:i+j], ",") {
			if len(hop) < 2 || hop[0] != '@' || !validDomain(hop[1:]) {
				return p, badAddr, false
			}
		}
		i += j + 1
	}
	if i < len(s) && s[i] == '>' {
		if kind == forwardPath || i != 1 {
			return p, badAddr, false
		}
		i++ // null reverse-path "<>"
	} else {
		start := i
		local, n, ok := scanLocalPart(s[i:])
		if !ok {
			return p, badAddr, false
		}
		i += n
		if i < len(s) && s[i] == '>' && kind == forwardPath && strings.EqualFold(local, "postmaster") {
			// RFC 5321 §4.1.1.3: "<Postmaster>" without a domain.
			p.addr = local
			i++
		} else {
			if i >= len(s) || s[i] != '@' {
				return p, badAddr, false
			}
			i++
			n, ok := scanDomain(s[i:])
			if !ok {
				return p, badAddr, false
			}
			// No limit on the local part alone: RFC 5321 §4.5.3.1 asks
			// to avoid such limits where possible, and VERP and SRS
			// addresses pass 64 octets (Postfix takes them); the path
			// limit below still holds.
			if n > maxDomain {
				return p, tooLong, false
			}
			i += n
			if i >= len(s) || s[i] != '>' {
				return p, badAddr, false
			}
			// A domain written with DNS's root dot ("example.com.") is
			// the same domain: taken without it, as Postfix does.
			p.addr = strings.TrimSuffix(s[start:i], ".")
			// A quoted local part that needs no quotes ("x"@y) is the
			// same mailbox as the bare one (RFC 5321 §4.1.2 asks for the
			// bare form where possible): taken bare, so that it matches
			// the recipients and is one recipient with x@y.
			if bare, ok := unquotedDotString(local); ok {
				p.addr = bare + p.addr[len(local):]
			}
			i++
		}
		if len(p.addr)+2 > maxPath {
			return p, tooLong, false
		}
	}
	for k := 0; k < len(p.addr); k++ {
		if p.addr[k] >= utf8.RuneSelf {
			p.nonASCII = true
			if !utf8.ValidString(p.addr) {
				return p, badAddr, false
			}
			break
		}
	}
	rest := s[i:]
	if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
		return p, syntax, false
	}
params:
	for _, f := range strings.Fields(rest) {
		pa, ok := parseParam(f)
		if !ok {
			return p, replySyntax, false
		}
		for _, q := range p.params {
			if q.key != pa.key {
				continue
			}
			// A keyword given twice the same way is taken once: Python's
			// smtplib sends SMTPUTF8 twice when the caller asked for it
			// and the message needs it, and Postfix takes that. Given
			// two ways, which one the client meant is not ours to guess.
			if q.hasValue == pa.hasValue && strings.EqualFold(q.value, pa.value) {
				continue params
			}
			return p, reply{501, "5.5.4", "Parameter " + pa.key + " given twice with different values"}, false
		}
		p.params = append(p.params, pa)
	}
	return p, reply{}, true
}

// parseParam parses esmtp-param = esmtp-keyword ["=" esmtp-value]
// (RFC 5321 §4.1.2; RFC 6531 §3.3 admits UTF-8 in values).
func parseParam(f string) (param, bool) {
	key, value, hasValue := strings.Cut(f, "=")
	if key == "" || !isAlnum(key[0]) {
		return param{}, false
	}
	for k := 1; k < len(key); k++ {
		if !isAlnum(key[k]) && key[k] != '-' {
			return param{}, false
		}
	}
	if hasValue {
		if value == "" {
			return param{}, false
		}
		for k := 0; k < len(value); k++ {
			c := value[k]
			if c < 33 || c == '=' || c == 127 {
				return param{}, false
			}
		}
		if !utf8.ValidString(value) {
			return param{}, false
		}
	}
	return param{key: strings.ToUpper(key), value: value, hasValue: hasValue}, true
}

// scanLocalPart scans a Local-part (RFC 5321 §4.1.2: Dot-string or
// Quoted-string; RFC 6531 §3.3 adds UTF-8) and returns it and its length.
// Dot placement is not checked: addresses like "a..b" exist in the wild and
// a receiver loses nothing by accepting them.
func scanLocalPart(s string) (string, int, bool) {
	if s == "" {
		return "", 0, false
	}
	if s[0] == '"' {
		for i := 1; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '"':
				return s[:i+1], i + 1, true
			case c == '\\':
				// quoted-pairSMTP = %d92 %d32-126
				if i+1 >= len(s) || s[i+1] < 32 || s[i+1] > 126 {
					return "", 0, false
				}
				i++
			case c >= 32 && c <= 126, c >= utf8.RuneSelf:
				// qtextSMTP: %d32-33 / %d35-91 / %d93-126 (and UTF-8)
			default:
				return "", 0, false
			}
		}
		return "", 0, false
	}
	i := 0
	for i < len(s) && (isAtext(s[i]) || s[i] == '.') {
		i++
	}
	if i == 0 {
		return "", 0, false
	}
	return s[:i], i, true
}

// unquotedDotString returns the content of the Quoted-string local part
// q when it is a Dot-string (atext runs joined by single dots), which the
// quotes add nothing to; ok is false otherwise, and for a bare q.
func unquotedDotString(q string) (string, bool) {
	if len(q) < 3 || q[0] != '"' {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(q)-1; i++ {
		c := q[i]
		if c == '\\' {
			i++
			c = q[i]
		}
		if !isAtext(c) && c != '.' {
			return "", false
		}
		b.WriteByte(c)
	}
	u := b.String()
	if u[0] == '.' || u[len(u)-1] == '.' || strings.Contains(u, "..") {
		return "", false
	}
	return u, true
}

// scanDomain scans a Domain or address-literal (RFC 5321 §4.1.2, §4.1.3)
// and returns its length.
func scanDomain(s string) (int, bool) {
	if s != "" && s[0] == '[' {
		for i := 1; i < len(s); i++ {
			c := s[i]
			if c == ']' {
				return i + 1, i > 1
			}
			// dcontent = %d33-90 / %d94-126
			if c < 33 || c > 126 || c == '[' || c == '\\' {
				return 0, false
			}
		}
		return 0, false
	}
	i := 0
	for i < len(s) && (isAlnum(s[i]) || s[i] == '-' || s[i] == '.' || s[i] >= utf8.RuneSelf) {
		i++
	}
	d := s[:i]
	if strings.HasSuffix(d, ".") && !strings.HasSuffix(d, "..") {
		d = d[:len(d)-1] // the root dot
	}
	if !validDomain(d) {
		return 0, false
	}
	return i, true
}

// validDomain checks Domain = sub-domain *("." sub-domain) loosely: labels
// are non-empty runs of letters, digits, hyphens and (RFC 6531 U-labels)
// UTF-8.
func validDomain(d string) bool {
	if d == "" {
		return false
	}
	if d[0] == '[' {
		n, ok := scanDomain(d)
		return ok && n == len(d)
	}
	label := 0
	for i := 0; i < len(d); i++ {
		c := d[i]
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		case isAlnum(c) || c == '-' || c >= utf8.RuneSelf:
			label++
		default:
			return false
		}
	}
	return label > 0
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// isAtext reports RFC 5322 atext, plus UTF-8 octets (RFC 6531 §3.3).
func isAtext(c byte) bool {
	if isAlnum(c) || c >= utf8.RuneSelf {
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// domainOf returns the domain of a mailbox ("" if none), for logs that must
// not carry full addresses.
func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// dedupKey is the identity of a recipient: the local part is
// case-sensitive (RFC 5321 §2.4), the domain is not, and neither is the
// local part "postmaster" (RFC 5321 §4.5.1).
func dedupKey(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		local := addr[:i]
		if strings.EqualFold(local, "postmaster") {
			local = "postmaster"
		}
		return local + "@" + strings.ToLower(addr[i+1:])
	}
	return strings.ToLower(addr)
}

// bdatArgs is the parsed argument of BDAT (RFC 3030 §2:
// "BDAT" SP chunk-size [SP end-marker]).
type bdatArgs struct {
	size int64
	last bool
	huge bool // a size of more than 18 digits: valid, but no chunk is that large
}

func parseBDAT(args string) (bdatArgs, bool) {
	f := strings.Fields(args)
	if len(f) < 1 || len(f) > 2 {
		return bdatArgs{}, false
	}
	for k := 0; k < len(f[0]); k++ {
		if f[0][k] < '0' || f[0][k] > '9' {
			return bdatArgs{}, false
		}
	}
	var b bdatArgs
	if digits := strings.TrimLeft(f[0], "0"); len(digits) > 18 {
		b.huge = true
	} else {
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return bdatArgs{}, false
		}
		b.size = n
	}
	if len(f) == 2 {
		if !strings.EqualFold(f[1], "LAST") {
			return bdatArgs{}, false
		}
		b.last = true
	}
	return b, true
}
