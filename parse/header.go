package parse

import (
	"bytes"
	"fmt"
	"iter"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jhillyerd/enmime/v2"

	"github.com/mailhook/mailhook/event"
)

// field is one header field as written: name and unfolded value, not yet
// RFC 2047-decoded.
type field struct {
	name  string
	value string
}

// headerBlock is the top-level header of a message.
type headerBlock struct {
	fields    []field
	bodyStart int // offset of the first body byte in the raw message
}

// splitHeader splits the header block at the start of raw into fields, in
// order, names as written. The block ends at the first empty line (or at
// the end of raw); a line starting with SP or HTAB continues the previous
// field (RFC 5322 §2.2.3: unfolding removes the CRLF only); a line without
// a colon is taken as a continuation that forgot its indent; lines with a
// malformed name are dropped with a warning.
//
// Except that a line that is not a header field and comes after the last
// one starts the body even without the empty line, as Postfix's
// cleanup(8) reads a message: the text of a message sent with no header at
// all ("hello" after DATA, which scripts do), or with no empty line after
// its header, is its body, not a continuation of the Received field
// mailhook put before it; so is that of a MIME part written the same way
// (bodyStart then falls inside raw). A field name with a space counts as
// no field there (RFC 5322 §3.6.8: printable US-ASCII, no space); a fold
// that lost its indent (lostIndent) still continues its field. In a
// message's own header (label ""), an mbox "From " line is skipped.
func splitHeader(raw []byte, w *warnings, label string) headerBlock {
	top := label == ""
	if label != "" {
		label += ": "
	}
	var hb headerBlock
	// lastField is where the block's last well-formed field line starts
	// (-1: none), looked for once, at the first line that is not one.
	lastField, looked := -1, false
	bodyAfter := func(start int) bool {
		if !looked {
			lastField, looked = lastFieldLine(raw, start), true
		}
		return start > lastField
	}
	// Names and values are cut from one string of the whole block, so a
	// header costs one allocation, not two a field; only a folded value
	// is built apart (+= on strings is quadratic on long folds).
	type span struct {
		name, value [2]int // offsets in raw
		folded      []byte // the unfolded value, if the field is folded
	}
	spans := make([]span, 0, 32) // on the stack: most headers have fewer fields
	unfold := func(sp *span, sep, line []byte) {
		if sp.folded == nil {
			sp.folded = append([]byte(nil), raw[sp.value[0]:sp.value[1]]...)
		}
		sp.folded = append(append(sp.folded, sep...), line...)
	}
	pos, bodyAt := 0, -1
	for pos < len(raw) {
		start := pos
		var line []byte
		line, pos = headerLine(raw, pos)
		if len(line) == 0 {
			break
		}
		if top && mboxFromLine(line) {
			w.addf("header line %s ignored: an mbox \"From \" separator, not a field", quoteBytes(line))
			continue
		}
		last := len(spans) - 1
		indented := line[0] == ' ' || line[0] == '\t' || line[0] == '\r'
		colon := bytes.IndexByte(line, ':')
		if (last < 0 || !indented) && !fieldLine(line, colon) && bodyAfter(start) &&
			(last < 0 || !lostIndent(raw[spans[last].name[0]:spans[last].name[1]], lastValue(spans[last].folded, raw[spans[last].value[0]:spans[last].value[1]]), line)) {
			w.addf("%sno empty line before the body: it starts at line %s, which is not a header field", label, quoteBytes(line))
			bodyAt = start
			break
		}
		switch {
		case indented:
			if last < 0 {
				w.addf("%sheader line %s ignored: continuation without a field", label, quoteBytes(line))
				continue
			}
			unfold(&spans[last], nil, line)
		case colon == 0:
			w.addf("%sheader line %s ignored: empty field name", label, quoteBytes(line))
		case colon < 0:
			if last < 0 {
				w.addf("%sheader line %s ignored: no field name", label, quoteBytes(line))
				continue
			}
			w.addf("%sheader line %s is not indented: taken as a continuation of %s", label, quoteBytes(line), raw[spans[last].name[0]:spans[last].name[1]])
			unfold(&spans[last], []byte{' '}, line)
		default:
			// RFC 5322 §4.5.4 (obsolete syntax): WSP may precede the colon.
			name := bytes.TrimRight(line[:colon], " \t")
			if !validFieldName(name) {
				w.addf("%sheader line %s ignored: invalid field name", label, quoteBytes(line))
				continue
			}
			spans = append(spans, span{name: [2]int{start, start + len(name)}, value: [2]int{start + colon + 1, start + len(line)}})
		}
	}
	hb.bodyStart = pos
	if bodyAt >= 0 {
		hb.bodyStart = bodyAt
	}
	if len(spans) == 0 {
		return hb // fields stay nil
	}
	block := string(raw[:hb.bodyStart])
	hb.fields = make([]field, len(spans))
	for i, sp := range spans {
		hb.fields[i].name = block[sp.name[0]:sp.name[1]]
		if sp.folded != nil {
			hb.fields[i].value = string(sp.folded)
		} else {
			hb.fields[i].value = block[sp.value[0]:sp.value[1]]
		}
	}
	return hb
}

// mimeFields are the fields enmime reads from an entity header.
var mimeFields = []string{"Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Content-ID"}

// Bounds on what enmime is given to parse in headers: its media type
// parser runs several passes of RFC 2047 decoding and repairs over each
// Content-Type and Content-Disposition, at about 0.5 µs a byte.
const (
	maxMIMEFieldBytes = 16 << 10
	mimeHeaderBudget  = 1 << 20 // all entities of a message together
)

// mimeHeader rebuilds the header enmime gets for an entity: the first of
// each field in mimeFields, unfolded, made UTF-8 like top-level fields,
// each at most maxMIMEFieldBytes long. enmime reads nothing else, so the
// rest of the header cannot cost it anything. An entity without a
// Content-Type gets defaultType when it is not "" (a part of a
// multipart/digest: message/rfc822, RFC 2046 §5.1.5); a Content-Type
// without a subtype is read as text/plain, its parameters kept (RFC 2045
// §5.2: an invalid type is text/plain), with a warning.
func mimeHeader(fields []field, w *warnings, label, defaultType string) (header []byte, read int) {
	var b bytes.Buffer
	for _, name := range mimeFields {
		found := false
		for _, f := range fields {
			if !strings.EqualFold(f.name, name) {
				continue
			}
			found = true
			value := strings.TrimSpace(strings.ReplaceAll(f.value, "\r", " "))
			read += len(name) + len(value) + 4
			if len(value) > maxMIMEFieldBytes {
				w.addf("%s: %s header ignored: %d bytes, more than %d", label, f.name, len(value), maxMIMEFieldBytes)
				break
			}
			if v, how := rawText(value); how != "" {
				if label != "message" { // top-level fields are reported by newHeaderReader
					w.addf("%s: %s header %s", label, f.name, how)
				}
				value = v
			}
			if name == "Content-Type" || name == "Content-Disposition" {
				if tidy := tidyParams(value); tidy != value {
					w.addf("%s: %s %s read as %s: comments, or text after a parameter without its \";\"", label, name, quote(value), quote(tidy))
					value = tidy
				}
			}
			if name == "Content-Type" {
				value = repairMediaType(withSubtype(value, w, label), w, label)
			}
			if name == "Content-Type" || name == "Content-Disposition" {
				value = fewParams(value, w, label, name)
			}
			b.WriteString(name + ": " + value + "\r\n")
			break
		}
		if !found && name == "Content-Type" && defaultType != "" {
			b.WriteString(name + ": " + defaultType + "\r\n")
		}
	}
	b.WriteString("\r\n")
	return b.Bytes(), read
}

// maxMIMEParams bounds the parameters of a Content-Type or
// Content-Disposition handed to enmime: its repairs of a value that is not
// plain cost time quadratic in their number (1,400 took 274 ms). Real
// values have a handful.
const maxMIMEParams = 100

// fewParams returns the field value v cut after its first maxMIMEParams
// parameters, with a warning, or v.
func fewParams(v string, w *warnings, label, name string) string {
	if strings.Count(v, ";") <= maxMIMEParams {
		return v
	}
	segs := splitParams(v)
	if len(segs) <= maxMIMEParams+1 {
		return v // semicolons in quoted strings
	}
	w.addf("%s: %s header has %d parameters: only the first %d read", label, name, len(segs)-1, maxMIMEParams)
	return strings.Join(segs[:maxMIMEParams+1], ";")
}

// withSubtype returns the Content-Type value v, or text/plain with v's
// parameters when v's type has no subtype ("text; charset=us-ascii",
// "garbage"), with a warning.
func withSubtype(v string, w *warnings, label string) string {
	mtype, params, _ := strings.Cut(v, ";")
	mtype = strings.TrimSpace(mtype)
	if mtype == "" || strings.ContainsAny(mtype, "/\"=") {
		return v // a type (or something enmime repairs), or no type at all
	}
	w.addf("%s: Content-Type %q has no subtype: read as text/plain", label, mtype)
	if params == "" {
		return "text/plain"
	}
	return "text/plain;" + params
}

// repairMediaType reads a Content-Type value that does not parse as a
// media type even leniently as mail clients read it: its leading
// type/subtype, with the attribute=value pairs after it that lack their
// ";" ("text/html charset=utf-8", a bug of PHP mailers), or else that type
// alone; with a warning. With no type/subtype to read it is text/plain
// (RFC 2045 §5.2). Without this the part would have no type at all, and
// its text would become a nameless application/octet-stream attachment.
func repairMediaType(v string, w *warnings, label string) string {
	if validMediaType(v) {
		return v
	}
	out := "text/plain"
	if mtype, rest, ok := leadingMediaType(v); ok {
		out = mtype
		if withParams := mtype + looseParams(rest); withParams != mtype && validMediaType(withParams) {
			out = withParams
		}
		if !validMediaType(out) {
			out = "text/plain"
		}
	}
	w.addf("%s: Content-Type %s is not a valid media type: read as %s", label, quote(v), quote(out))
	return out
}

// validMediaType reports whether parseMediaType reads v: without an
// error, and not as the application/octet-stream enmime's parser falls
// back to when it cannot.
func validMediaType(v string) bool {
	if plainMediaType(v) {
		return true // RFC 2045's own form: no second parse for the common case
	}
	mtype, _, _, err := parseMediaType(v)
	if err != nil {
		return false
	}
	const fallback = "application/octet-stream"
	return mtype != fallback || strings.HasPrefix(strings.ToLower(strings.TrimSpace(v)), fallback)
}

// leadingMediaType returns the type/subtype v starts with (RFC 2045
// tokens), lower-cased, and the rest of v.
func leadingMediaType(v string) (mtype, rest string, ok bool) {
	v = strings.TrimLeft(v, " \t")
	typ := tokenEnd(v, 0)
	if typ == 0 || typ >= len(v) || v[typ] != '/' {
		return "", "", false
	}
	end := tokenEnd(v, typ+1)
	if end == typ+1 {
		return "", "", false
	}
	return strings.ToLower(v[:end]), v[end:], true
}

// looseParams returns the attribute=value pairs of s, separated by white
// space, ";" or ",", as "; attribute=value" each (values as written:
// tokens or quoted strings), skipping the words between them that are not
// one ("text/plain @ charset=koi8-r").
func looseParams(s string) string {
	var b strings.Builder
	for {
		s = strings.TrimLeft(s, " \t;,")
		if s == "" {
			return b.String()
		}
		n := tokenEnd(s, 0)
		var m int
		if n > 0 && n < len(s) && s[n] == '=' {
			val := s[n+1:]
			if strings.HasPrefix(val, `"`) {
				if end := strings.IndexByte(val[1:], '"'); end >= 0 {
					m = end + 2
				}
			} else {
				m = tokenEnd(val, 0)
			}
		}
		if m == 0 {
			// Not a pair: skip to the next separator.
			end := strings.IndexAny(s, " \t;,")
			if end < 0 {
				return b.String()
			}
			s = s[end:]
			continue
		}
		b.WriteString("; " + s[:n+1+m])
		s = s[n+1+m:]
	}
}

// headerLine returns the line of raw starting at pos, without its line
// break, and where the next one starts.
func headerLine(raw []byte, pos int) (line []byte, next int) {
	next = len(raw)
	if i := bytes.IndexByte(raw[pos:], '\n'); i >= 0 {
		next = pos + i + 1
	}
	return bytes.TrimSuffix(bytes.TrimSuffix(raw[pos:next], []byte("\n")), []byte("\r")), next
}

// fieldLine reports whether line, whose first colon is at colon (-1:
// none), is a well-formed header field line: a name of printable US-ASCII
// without space (RFC 5322 §3.6.8), optionally followed by WSP (§4.5.4),
// then the colon.
func fieldLine(line []byte, colon int) bool {
	if colon <= 0 {
		return false
	}
	name := bytes.TrimRight(line[:colon], " \t")
	return validFieldName(name) && bytes.IndexByte(name, ' ') < 0
}

// lastValue is a field's value so far: its unfolded value if it was
// folded, else as written.
func lastValue(folded, written []byte) []byte {
	if folded != nil {
		return folded
	}
	return written
}

// lostIndent reports whether line, not a field, reads as the continuation
// of the field name whose value so far is value but whose fold lost its
// indent, as some mailers write: a value ending in ";" or "," asks for
// more (parameters, addresses), and for Content-Type and
// Content-Disposition a line starting with a parameter ("name=…",
// "filename*0*=…") gives one. Such a line stays a continuation even after
// the last field. Other "name=value" lines after the header are its body,
// which lacks the empty line before it: a script's "status=CRITICAL", a
// quoted-printable "caf=C3=A9", a delimiter "------=_Part_1".
func lostIndent(field, value, line []byte) bool {
	if v := bytes.TrimRight(value, " \t"); len(v) > 0 && (v[len(v)-1] == ';' || v[len(v)-1] == ',') {
		return true
	}
	if !nameIs(string(field), "content-type") && !nameIs(string(field), "content-disposition") {
		return false
	}
	name, _, ok := bytes.Cut(line, []byte("="))
	if !ok || len(name) == 0 || !(name[0] >= 'a' && name[0] <= 'z' || name[0] >= 'A' && name[0] <= 'Z') {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '*') {
			return false
		}
	}
	return true
}

// mboxFromLine reports whether line is the "From " line that starts each
// message in an mbox file ("From sender date"), which files of mail
// often keep and scripts then send as the first line of the message; a
// From field written with space before its colon is not one.
func mboxFromLine(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("From ")) {
		return false
	}
	name, _, _ := bytes.Cut(line, []byte(":"))
	return !bytes.Equal(bytes.TrimRight(name, " \t"), []byte("From"))
}

// lastFieldLine returns where the last field line (fieldLine) of the
// header block starts, looking from offset from up to the block's first
// empty line, or up to the delimiter of a boundary the header declared
// before from: the body has begun there even if its preamble followed the
// header without an empty line (Thunderbird has sent such messages), and
// the part headers after the delimiter are not this header's. -1 if there
// is none.
func lastFieldLine(raw []byte, from int) int {
	last := -1
	var boundaries [][]byte // declared before from; read at the first "--" line
	read := false
	for pos := from; pos < len(raw); {
		start := pos
		var line []byte
		line, pos = headerLine(raw, pos)
		if len(line) == 0 {
			break
		}
		if bytes.HasPrefix(line, []byte("--")) {
			if !read {
				boundaries, read = declaredBoundaries(raw[:from]), true
			}
			if delimiterOf(boundaries, line) {
				break
			}
		}
		if fieldLine(line, bytes.IndexByte(line, ':')) {
			last = start
		}
	}
	return last
}

// delimiterOf reports whether line is the delimiter ("--" boundary,
// "--" after it for the last one, white space allowed at its end) of one
// of boundaries.
func delimiterOf(boundaries [][]byte, line []byte) bool {
	b, ok := bytes.CutPrefix(bytes.TrimRight(line, " \t\r"), []byte("--"))
	if !ok {
		return false
	}
	for _, want := range boundaries {
		if bytes.Equal(b, want) || bytes.Equal(bytes.TrimSuffix(b, []byte("--")), want) {
			return true
		}
	}
	return false
}

// maxDeclaredBoundaries bounds the boundary parameters declaredBoundaries
// returns: a header declares one.
const maxDeclaredBoundaries = 4

// declaredBoundaries returns the values of the boundary parameters written
// in header (quotes removed), at most maxDeclaredBoundaries of them. It
// reads the raw text, not the parsed Content-Type: the header it looks at
// may not have ended where it should.
func declaredBoundaries(header []byte) [][]byte {
	var out [][]byte
	const name = "boundary"
	for i := 0; i+len(name) <= len(header) && len(out) < maxDeclaredBoundaries; i++ {
		if !bytes.EqualFold(header[i:i+len(name)], []byte(name)) {
			continue
		}
		rest := bytes.TrimLeft(header[i+len(name):], " \t")
		if len(rest) == 0 || rest[0] != '=' {
			continue
		}
		rest = bytes.TrimLeft(rest[1:], " \t")
		var v []byte
		if len(rest) > 0 && rest[0] == '"' {
			v = rest[1:]
			if end := bytes.IndexByte(v, '"'); end >= 0 {
				v = v[:end]
			}
		} else {
			v = rest
			if end := bytes.IndexAny(v, " \t\r\n;"); end >= 0 {
				v = v[:end]
			}
		}
		if len(v) > 0 {
			out = append(out, v)
		}
	}
	return out
}

// validFieldName reports whether name is an RFC 5322 §2.2 field name:
// printable US-ASCII except colon. enmime additionally tolerates inner SP.
func validFieldName(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c != ' ' && (c < 33 || c > 126) {
			return false
		}
	}
	return true
}

// headerReader decodes the top-level fields and answers lookups by name.
type headerReader struct {
	fields []field // values decoded to UTF-8 (8-bit and encoded words)
	raw    []string
	dec    *wordDecoder
	w      *warnings

	addrBudget int // bytes of address lists still to be parsed
}

// Caps on header work. Real messages have tens of fields (a few hundred
// with long Received chains) and address lists of kilobytes; without caps
// a 25 MB header costs seconds and yields an event of millions of fields.
const (
	maxHeaderFields = 10000
	// addressBudget is the total length of address-list field values
	// parsed (net/mail with its fallbacks runs at about 0.5 µs a byte).
	addressBudget = 1 << 20
)

func newHeaderReader(hb headerBlock, dec *wordDecoder, w *warnings) *headerReader {
	hr := &headerReader{dec: dec, w: w, addrBudget: addressBudget}
	fields := hb.fields
	if len(fields) > maxHeaderFields {
		w.addf("%d header fields: only the first %d are listed and used", len(fields), maxHeaderFields)
		fields = fields[:maxHeaderFields]
	}
	hr.fields = make([]field, 0, len(fields))
	hr.raw = make([]string, 0, len(fields))
	for _, f := range fields {
		value := strings.TrimSpace(strings.ReplaceAll(f.value, "\r", " ")) // stray CR from a bare-CR line end
		value, how := rawText(value)
		if how != "" {
			w.addf("header %s %s", f.name, how)
		}
		decode := dec.decode
		if addressField(f.name) {
			decode = dec.decodeAddressField
		}
		decoded, problems := decode(value)
		for _, p := range problems {
			w.addf("header %s: %s", f.name, p)
		}
		hr.fields = append(hr.fields, field{name: f.name, value: decoded})
		hr.raw = append(hr.raw, value)
	}
	return hr
}

// addressField reports whether the field named name holds an address list
// (RFC 5322 §3.6.2, §3.6.3, §3.6.6).
func addressField(name string) bool {
	for _, a := range []string{"from", "sender", "reply-to", "to", "cc", "bcc",
		"resent-from", "resent-sender", "resent-to", "resent-cc", "resent-bcc"} {
		if nameIs(name, a) {
			return true
		}
	}
	return false
}

// named returns the index of the first field whose lower-cased name is
// lower and how many there are. A handful of lookups per message: a scan
// costs less than indexing every field by its lower-cased name.
func (hr *headerReader) named(lower string) (first, n int) {
	first = -1
	for i := range hr.fields {
		if nameIs(hr.fields[i].name, lower) {
			if n == 0 {
				first = i
			}
			n++
		}
	}
	return first, n
}

// nameIs reports whether strings.ToLower(name) == lower, without
// allocating when name is ASCII.
func nameIs(name, lower string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] >= utf8.RuneSelf {
			return strings.ToLower(name) == lower
		}
	}
	if len(name) != len(lower) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// headers returns every field, in order, as event headers. Never nil.
func (hr *headerReader) headers() []event.Header {
	out := make([]event.Header, 0, len(hr.fields))
	for _, f := range hr.fields {
		out = append(out, event.Header{Name: f.name, Value: f.value})
	}
	return out
}

// first returns the decoded value of the first field called name, warning
// when RFC 5322 §3.6 allows at most one and there are more.
func (hr *headerReader) first(name string) string {
	i, n := hr.named(strings.ToLower(name))
	if n == 0 {
		return ""
	}
	if n > 1 {
		hr.w.addf("%d %s header fields, RFC 5322 allows one: using the first", n, name)
	}
	return hr.fields[i].value
}

// addresses parses every field called name as an address list. All fields
// are used: a duplicated To or From is malformed, but dropping addresses
// would hide what the message claims. Never nil.
func (hr *headerReader) addresses(name string) []event.Address {
	out := []event.Address{}
	lower := strings.ToLower(name)
	first, n := hr.named(lower)
	if n > 1 {
		hr.w.addf("%d %s header fields, RFC 5322 allows one: addresses from all are listed", n, name)
	}
	if n == 0 {
		return out
	}
	for i := first; i < len(hr.fields); i++ {
		if nameIs(hr.fields[i].name, lower) {
			out = append(out, hr.parseAddressList(name, hr.raw[i])...)
		}
	}
	return out
}

// parseAddressList parses one address-list field value (RFC 5322 §3.4),
// decoding display names. It tries net/mail on the whole list, then reads
// it an address at a time (parseEntry), so that one address net/mail
// refuses costs the others nothing.
func (hr *headerReader) parseAddressList(name, value string) []event.Address {
	if strings.TrimSpace(value) == "" {
		return nil
	}
	if len(value) > hr.addrBudget {
		hr.w.addf("header %s: address list not parsed: address fields longer than %d bytes in all", name, addressBudget)
		return nil
	}
	hr.addrBudget -= len(value)
	value = nullAddresses(escapeWordSpecials(value))
	p := mail.AddressParser{WordDecoder: &hr.dec.dec}
	list, err := p.ParseList(value)
	var asWritten map[*mail.Address]bool // read leniently: kept as written
	if err != nil {
		// One malformed address (obsolete syntax, a carrier's dotted
		// local part, an address as display name) must not cost the
		// others their names: read the list an entry at a time.
		hr.w.addf("header %s: address list not RFC 5322 (%v): read an address at a time", name, err)
		list, asWritten = nil, make(map[*mail.Address]bool)
		for _, entry := range addressEntries(value) {
			list = append(list, hr.parseEntry(name, &p, entry, asWritten)...)
		}
	}
	out := make([]event.Address, 0, len(list))
	for _, a := range list {
		// Encoded words inside quoted strings are forbidden (RFC 2047 §5)
		// but common; net/mail leaves them alone, so decode them here.
		dn, problems := hr.dec.decode(a.Name)
		for _, p := range problems {
			hr.w.addf("header %s: %s", name, p)
		}
		addr := a.Address
		switch {
		case addr == nullAddress:
			addr = ""
		case !asWritten[a]:
			addr = quoteLocal(addr)
		}
		out = append(out, event.Address{Name: validUTF8(dn), Address: validUTF8(addr)})
	}
	return out
}

// parseEntry reads one entry of an address list net/mail refused whole:
// as net/mail would alone, else leniently (lenientAddress), else as
// enmime's tolerant parser does (commas missing between addresses), else
// by picking out what looks like addr-specs, without names.
func (hr *headerReader) parseEntry(name string, p *mail.AddressParser, entry string, asWritten map[*mail.Address]bool) []*mail.Address {
	if strings.TrimSpace(entry) == "" {
		return nil
	}
	if a, err := p.Parse(entry); err == nil {
		return []*mail.Address{a}
	}
	if dn, addr, ok := lenientAddress(entry); ok {
		a := &mail.Address{Name: dn, Address: addr}
		asWritten[a] = true
		return []*mail.Address{a}
	}
	if alt, err := enmime.ParseAddressList(entry); err == nil {
		return alt
	}
	if dn, local, ok := localOnlyAddress(entry); ok {
		hr.w.addf("header %s: address %s has no domain: kept as written", name, quote(local))
		a := &mail.Address{Name: dn, Address: local}
		asWritten[a] = true
		return []*mail.Address{a}
	}
	if phrase, ok := nameOnly(entry); ok {
		hr.w.addf("header %s: %s has no address: kept as a name", name, quote(strings.TrimSpace(entry)))
		a := &mail.Address{Name: phrase, Address: nullAddress}
		asWritten[a] = true
		return []*mail.Address{a}
	}
	found := addrSpecRE.FindAllString(entry, -1)
	hr.w.addf("header %s: %s not readable as an address: %d address(es) recovered without names", name, quote(strings.TrimSpace(entry)), len(found))
	out := make([]*mail.Address, 0, len(found))
	for _, a := range found {
		ma := &mail.Address{Address: a}
		asWritten[ma] = true // not an address to quote into another one
		out = append(out, ma)
	}
	return out
}

// addressEntries splits an address list at its commas, leaving those in
// quoted strings, comments and angle brackets, and drops group syntax
// ("Team:" before the first member, ";" after the last).
func addressEntries(v string) []string {
	var entries []string
	angle, start := false, 0
	for i, at := range places(v) {
		if at != outside {
			continue
		}
		switch c := v[i]; {
		case c == '<':
			angle = true
		case c == '>':
			angle = false
		case angle:
		case c == ':' && !strings.Contains(v[start:i], "@"):
			start = i + 1 // a group's name
		case c == ';' || c == ',':
			entries = append(entries, v[start:i])
			start = i + 1
		}
	}
	return append(entries, v[start:])
}

// lenientAddress reads entry, one address net/mail refused, the way mail
// clients do: comments dropped (RFC 5322 §3.2.2; obsolete syntax puts
// them anywhere), the display name whatever precedes the angle-addr
// (quotes and all: "ann@example.com <ann@example.com>"), the address what
// the brackets hold, without white space (obs-local-part and obs-domain
// allow it around dots and "@") or a source route (obs-route), kept as
// written otherwise ("taro..yamada.@docomo.ne.jp", which carriers hand
// out). Without brackets the entry must hold one address only. ok is
// false when the entry is not such an address.
func lenientAddress(entry string) (name, addr string, ok bool) {
	s := withoutComments(entry)
	name, addr, angled := angleAddr(s)
	switch {
	case angled == angleBad || strings.ContainsAny(name, "<>"):
		return "", "", false
	case angled == angleNone:
		name, addr = nameBeforeBare(s)
	}
	words := strings.Fields(addr)
	for i := 1; i < len(words); i++ {
		if !obsJoin(words[i-1], words[i]) {
			return "", "", false // words, not an address: "b@example.com more text"
		}
	}
	addr = strings.Join(words, "")
	if strings.HasPrefix(addr, "@") {
		if colon := strings.IndexByte(addr, ':'); colon >= 0 {
			addr = addr[colon+1:] // @relay.example:user@example.com
		}
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 || strings.Count(addr, "@") > 1 && !strings.HasPrefix(addr, `"`) ||
		strings.ContainsAny(addr, "<>(),;") {
		return "", "", false
	}
	return name, addr, true
}

// obsJoin reports whether the words a and b, white space between them,
// are one address in obsolete syntax, which allows the space only around
// its dots and "@" (and the ":" and "," of a source route).
func obsJoin(a, b string) bool {
	return strings.ContainsRune(".@:,", rune(a[len(a)-1])) || strings.ContainsRune(".@", rune(b[0]))
}

// localOnlyAddress reads an entry whose address has no domain, as cron
// and scripts on hosts without a mail domain write the sender ("Cron
// Daemon <root>", "root (Cron Daemon)", "MAILER-DAEMON"), and as mail
// clients show it: the address is the local part alone (a dot-atom), the
// name the phrase before the angle brackets, or else a comment.
func localOnlyAddress(entry string) (name, local string, ok bool) {
	s := withoutComments(entry)
	name, local, angled := angleAddr(s)
	switch angled {
	case angleBad:
		return "", "", false
	case angleFound:
		local = strings.TrimSpace(local)
	default:
		f := strings.Fields(s)
		if len(f) != 1 {
			return "", "", false
		}
		local = f[0]
		if i := strings.IndexByte(entry, '('); i >= 0 {
			if j := strings.LastIndexByte(entry, ')'); j > i {
				name = strings.TrimSpace(entry[i+1 : j])
			}
		}
	}
	quoted := angled == angleFound && strings.HasPrefix(strings.TrimSpace(s), `"`) // angleAddr unquoted it
	if !dotAtom(local) || looksEncoded(local) || strings.ContainsAny(name, "<>") || strings.Contains(name, "@") && !quoted {
		return "", "", false
	}
	return name, local, true
}

// looksEncoded reports whether s is shaped like an RFC 2047 encoded word,
// which dotAtom would take for a local part.
func looksEncoded(s string) bool {
	return len(s) > 4 && strings.HasPrefix(s, "=?") && strings.HasSuffix(s, "?=")
}

// nameOnly reads an entry that holds no address at all, only a phrase
// ("John Doe", an encoded word: spam and hand-written headers), as mail
// clients show it: the phrase, comments dropped, is the name.
func nameOnly(entry string) (name string, ok bool) {
	if strings.ContainsAny(entry, "@<>") {
		return "", false
	}
	name = strings.Join(strings.Fields(withoutComments(entry)), " ")
	if uq, ok := wholeQuoted(name); ok {
		name = strings.TrimSpace(uq) // `"John Doe"`
	}
	return name, name != ""
}

// nameBeforeBare splits a display name written before a bare address,
// without the angle brackets ("José jose@example.com", encoded words
// before the address), as mail clients read it: the last word is the
// address if it is one and no word before it has an "@". A local part
// written with spaces around its dots ("john . doe@example.com", obsolete
// syntax) or quoted stays whole: name "", and s as the address.
func nameBeforeBare(s string) (name, addr string) {
	if t := strings.TrimSpace(s); strings.HasPrefix(t, `"`) {
		// A quoted name: `"Bob" b@example.com`.
		if end := quotedEnd(t, 0); end > 0 {
			rest := strings.TrimSpace(t[end:])
			if uq := unquote(t[:end]); rest != "" && !strings.ContainsAny(rest, " \t\"") {
				if at := strings.LastIndexByte(rest, '@'); at > 0 && at < len(rest)-1 {
					return uq, rest
				}
			}
		}
	}
	f := strings.Fields(s)
	if len(f) < 2 || strings.ContainsRune(s, '"') {
		return "", s
	}
	last := f[len(f)-1]
	if at := strings.LastIndexByte(last, '@'); at <= 0 || at == len(last)-1 || last[0] == '.' {
		return "", s
	}
	for _, w := range f[:len(f)-1] {
		if strings.ContainsRune(w, '@') || strings.HasSuffix(w, ".") || strings.HasPrefix(w, ".") {
			return "", s
		}
	}
	return strings.Join(f[:len(f)-1], " "), last
}

// wholeQuoted returns the content of s if s is one quoted string (RFC
// 5322 §3.2.4: a backslash quotes the next character, whatever it is),
// and whether it is.
func wholeQuoted(s string) (string, bool) {
	if !strings.HasPrefix(s, `"`) || quotedEnd(s, 0) != len(s) {
		return s, false
	}
	return unquote(s), true
}

// What angleAddr found.
const (
	angleNone  = iota // no "<"
	angleFound        // a closed <…> ending the entry
	angleBad          // unclosed, or text after the ">": not one address
)

// angleAddr splits s, an address list entry without its comments, at its
// last unquoted "<…>": the name before it (trimmed, and unquoted if a
// quoted string) and what the brackets hold.
func angleAddr(s string) (name, inside string, found int) {
	open := lastUnquoted(s, '<')
	if open < 0 {
		return "", "", angleNone
	}
	end := strings.IndexByte(s[open:], '>')
	if end < 0 || strings.TrimSpace(s[open+end+1:]) != "" {
		return "", "", angleBad
	}
	name = strings.TrimSpace(s[:open])
	if uq, ok := wholeQuoted(name); ok {
		name = uq
	}
	return name, s[open+1 : open+end], angleFound
}

// withoutComments returns s with its comments (outside quoted strings)
// replaced by a space.
func withoutComments(s string) string {
	if !strings.Contains(s, "(") {
		return s
	}
	var b strings.Builder
	spaced := false // a space stands for the comment being skipped
	for i, at := range places(s) {
		if at == inComments {
			if !spaced {
				b.WriteByte(' ')
				spaced = true
			}
			continue
		}
		spaced = false
		b.WriteByte(s[i])
	}
	return b.String()
}

// lastUnquoted returns the index of the last c in s outside quoted
// strings, or -1.
func lastUnquoted(s string, c byte) int {
	last := -1
	for i, at := range places(s) {
		if at != inQuotes && s[i] == c {
			last = i
		}
	}
	return last
}

// nullAddress stands in for the null address "<>" while a list is parsed:
// bounces come From: "Mail System" <>, which net/mail refuses, and the
// whole list would be lost. It comes out as an empty address.
const nullAddress = "null@null.mailhook.invalid"

// nullAddresses replaces each "<>" of the address list v outside quoted
// strings and comments with <nullAddress>.
func nullAddresses(v string) string {
	if !strings.Contains(v, "<>") {
		return v
	}
	var b strings.Builder
	last := 0
	for i, at := range places(v) {
		if at == outside && strings.HasPrefix(v[i:], "<>") {
			b.WriteString(v[last:i])
			b.WriteString("<" + nullAddress + ">")
			last = i + 2
		}
	}
	b.WriteString(v[last:])
	return b.String()
}

// Where a byte of an address field stands (RFC 5322 §3.2.2, §3.2.4).
const (
	outside    = iota // in neither a quoted string nor a comment
	inQuotes          // in a quoted string, its quotes included
	inComments        // in a comment, its parentheses (and nested ones) included
)

// places yields each byte index of s with where it stands; a
// quoted-pair's two bytes stand where its backslash does.
func places(s string) iter.Seq2[int, int] {
	return func(yield func(int, int) bool) {
		quoted, comment := false, 0
		for i := 0; i < len(s); i++ {
			c, at := s[i], outside
			switch {
			case quoted:
				at = inQuotes
			case comment > 0:
				at = inComments
			}
			switch {
			case c == '\\' && at != outside && i+1 < len(s):
				if !yield(i, at) {
					return
				}
				i++
			case c == '"' && comment == 0:
				quoted, at = !quoted, inQuotes
			case c == '(' && !quoted:
				comment, at = comment+1, inComments
			case c == ')' && !quoted && comment > 0:
				comment, at = comment-1, inComments
			}
			if !yield(i, at) {
				return
			}
		}
	}
}

// quoteLocal returns the address with its local part quoted again when it
// needs quotes ("john doe"@example.com): net/mail gives it unquoted, which
// is not an address any more.
func quoteLocal(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || dotAtom(addr[:at]) {
		return addr
	}
	local := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(addr[:at])
	return `"` + local + `"` + addr[at:]
}

// dotAtom reports whether s is an RFC 5322 dot-atom (with RFC 6532's
// UTF-8): atext runs separated by single dots.
func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || c == '.' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// addrSpecRE finds things shaped like addr-specs in an unparseable list.
var addrSpecRE = regexp.MustCompile(`[^\s<>(),;:"\[\]]+@[^\s<>(),;:"\[\]]+`)

// msgIDs returns the msg-id values (RFC 5322 §3.6.4) in s without their
// angle brackets. Text outside brackets (comments, phrases from obsolete
// syntax) is ignored; a value with no brackets at all is split on
// whitespace, as some mailers write bare ids. Never nil.
func msgIDs(s string) []string {
	ids := []string{}
	rest := s
	for {
		open := strings.IndexByte(rest, '<')
		if open < 0 {
			break
		}
		closing := strings.IndexByte(rest[open+1:], '>')
		if closing < 0 {
			// Unterminated: take the rest as an id.
			if id := strings.TrimSpace(rest[open+1:]); id != "" {
				ids = append(ids, id)
			}
			return ids
		}
		if id := strings.TrimSpace(rest[open+1 : open+1+closing]); id != "" {
			ids = append(ids, id)
		}
		rest = rest[open+1+closing+1:]
	}
	if len(ids) == 0 && !strings.Contains(s, "<") {
		ids = append(ids, strings.Fields(s)...)
	}
	return ids
}

// firstMsgID is msgIDs(s)[0], or "".
func firstMsgID(s string) string {
	if ids := msgIDs(s); len(ids) > 0 {
		return ids[0]
	}
	return ""
}

// quote quotes s for a warning, cut to a readable length.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		s = validUTF8(s[:max]) + "…"
	}
	return strconv.Quote(s)
}

func quoteBytes(b []byte) string { return quote(string(b)) }

// escapeWordSpecials writes the RFC 5322 specials that stand raw in the
// text of Q-encoded words of v as =XX, as RFC 2047 §5 requires in a
// phrase: mailers that leave a comma raw ("=?utf-8?q?M=C3=BCller,_Hans?=")
// would have the address list split inside the word, losing the name.
func escapeWordSpecials(v string) string {
	var b strings.Builder
	i := 0 // v[:i] is written
	for from := 0; ; {
		w, ok := nextWord(v, from)
		if !ok {
			break
		}
		from = w.end
		if (w.enc != 'Q' && w.enc != 'q') || !strings.ContainsAny(w.text, phraseSpecials) {
			continue // as it is, copied with what follows
		}
		textStart := w.end - 2 - len(w.text)
		b.WriteString(v[i:textStart])
		for k := 0; k < len(w.text); k++ {
			if c := w.text[k]; strings.IndexByte(phraseSpecials, c) >= 0 {
				fmt.Fprintf(&b, "=%02X", c)
			} else {
				b.WriteByte(c)
			}
		}
		b.WriteString("?=")
		i = w.end
	}
	if i == 0 {
		return v // nothing escaped
	}
	b.WriteString(v[i:])
	return b.String()
}
