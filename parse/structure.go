package parse

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/jhillyerd/enmime/v2"
)

// node is one MIME entity located by split: offsets into the raw message,
// nothing decoded.
type node struct {
	id        string     // "1", "1.2", …; "" for the root
	header    []byte     // the header enmime gets (see mimeHeader)
	start     int        // first byte of its header
	bodyStart int        // first byte of its body
	end       int        // just past its content (RFC 2046 §5.1.1: the line break before a delimiter belongs to the delimiter)
	mtype     string     // media type, lower case, "" when none or unparseable
	cte       string     // Content-Transfer-Encoding, lower case
	boundary  string     // multipart boundary, set only for entities split as multipart
	plain     *plainMIME // set when the header is plain (see plainMIME)
	children  []*node
	tooDeep   bool   // a multipart nested deeper than the limit: not split, not parsed
	body      []byte // the body to decode when not raw[bodyStart:end] (set by recode)
}

// tree is the MIME structure of a message as located by split.
type tree struct {
	root  *node
	parts int // entities below the root
	depth int // deepest multipart nesting, a multipart root being 1
}

// split locates the MIME entities of raw in one pass over its lines,
// following RFC 2046 §5.1.1: within a multipart, a line that starts with
// "--" boundary followed by white space or the line end is a delimiter,
// one that starts with "--" boundary "--" closes it; the line break before
// either belongs to it; text before the first delimiter (preamble) and
// after the close (epilogue) is ignored. A line is tested against the open
// multiparts from the outermost in, so a nested part can never swallow its
// parent's delimiter, and a missing close delimiter ends at the parent's
// next delimiter or at the end of the message.
//
// Work is one pass over the bytes plus, for lines starting with "--", one
// comparison per open level; multiparts deeper than maxDepth are kept as
// opaque entities (not split), and scanning stops at the delimiter that
// would start part maxParts+1, or the first after the MIME headers handed
// to enmime reach mimeHeaderBudget.
func split(raw []byte, hb headerBlock, maxDepth, maxParts int, w *warnings) tree {
	root := &node{start: 0, bodyStart: hb.bodyStart, end: len(raw)}
	t := tree{root: root}
	budget := mimeHeaderBudget
	var read int
	root.header, read = mimeHeader(hb.fields, w, "message", "")
	budget -= max(len(root.header), read) // what was read, even if repaired shorter
	root.mtype, root.cte, root.boundary, root.plain = classify(root.header, w, "message")
	if root.boundary == "" {
		return t
	}
	t.depth = 1

	stack := []*node{root}
	var (
		cur      *node // the part whose header or content is being read
		inHeader bool
	)
	// endHeader ends cur's header at hdrEnd with its body at body and
	// opens it as a multipart when it is one.
	endHeader := func(hdrEnd, body int) {
		inHeader = false
		cur.bodyStart = body
		label := "part " + cur.id
		hb := splitHeader(raw[cur.start:hdrEnd], w, label)
		if hb.bodyStart < hdrEnd-cur.start {
			cur.bodyStart = cur.start + hb.bodyStart // no empty line after the header
		}
		defaultType := ""
		if stack[len(stack)-1].mtype == "multipart/digest" {
			defaultType = "message/rfc822"
		}
		var read int
		cur.header, read = mimeHeader(hb.fields, w, label, defaultType)
		budget -= max(len(cur.header), read)
		cur.mtype, cur.cte, cur.boundary, cur.plain = classify(cur.header, w, label)
		if cur.boundary == "" {
			return
		}
		if len(stack)+1 > maxDepth {
			cur.boundary, cur.tooDeep = "", true
			return
		}
		stack = append(stack, cur)
		t.depth = max(t.depth, len(stack))
		cur = nil
	}
	// endOpen ends cur and the multiparts nested deeper than level keep at
	// offset end.
	endOpen := func(keep int, end int) {
		if cur != nil {
			cur.end = max(end, cur.bodyStart)
			cur = nil
		}
		for _, n := range stack[keep:] {
			n.end = max(end, n.bodyStart)
		}
	}

	pos := hb.bodyStart
	for pos < len(raw) && len(stack) > 0 {
		next := len(raw)
		if i := bytes.IndexByte(raw[pos:], '\n'); i >= 0 {
			next = pos + i + 1
		}
		line := raw[pos:next]
		level, closing := -1, false
		if bytes.HasPrefix(line, []byte("--")) {
			level, closing = matchDelimiter(stack, line)
		}
		if level < 0 {
			if inHeader && (string(line) == "\n" || string(line) == "\r\n") {
				endHeader(pos, next)
			}
			pos = next
			continue
		}

		if inHeader {
			endHeader(pos, pos)
		}
		contentEnd := pos
		if contentEnd > 0 && raw[contentEnd-1] == '\n' {
			contentEnd--
			if contentEnd > 0 && raw[contentEnd-1] == '\r' {
				contentEnd--
			}
		}
		endOpen(level+1, contentEnd)
		warnUnclosed(stack[level+1:], w)
		parent := stack[level]
		stack = stack[:level+1]
		if closing {
			stack = stack[:level]
			pos = next
			continue
		}
		if t.parts+1 > maxParts || budget < 0 {
			if budget < 0 {
				w.addf("MIME part headers over %d bytes in all: parts from byte %d on (%d bytes) not parsed", mimeHeaderBudget, pos, len(raw)-pos)
			} else {
				w.addf("MIME structure has more than %d parts: parts from byte %d on (%d bytes) not parsed", maxParts, pos, len(raw)-pos)
			}
			for _, n := range stack {
				n.end = max(contentEnd, n.bodyStart)
			}
			return t
		}
		t.parts++
		cur = &node{id: childID(parent, len(parent.children)+1), start: next, bodyStart: next, end: len(raw)}
		parent.children = append(parent.children, cur)
		inHeader = true
		pos = next
	}
	if inHeader {
		endHeader(len(raw), len(raw))
	}
	endOpen(0, len(raw))
	warnUnclosed(stack, w)
	return t
}

// warnUnclosed warns about multiparts ended by an outer delimiter or the
// end of the message. One without any part gets its own warning later.
func warnUnclosed(open []*node, w *warnings) {
	for _, n := range open {
		if len(n.children) > 0 {
			w.addf("%s: %s boundary %q not closed", n.label(), n.mtype, n.boundary)
		}
	}
}

// matchDelimiter returns the outermost open level whose delimiter line is
// line, and whether it is the close delimiter; -1 when none.
func matchDelimiter(stack []*node, line []byte) (int, bool) {
	for i, n := range stack {
		b := n.boundary
		if len(line) < 2+len(b) || string(line[2:2+len(b)]) != b {
			continue
		}
		rest := line[2+len(b):]
		if bytes.HasPrefix(rest, []byte("--")) {
			return i, true
		}
		if len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\r' || rest[0] == '\n' {
			return i, false
		}
	}
	return -1, false
}

// readers recycles the buffered readers of classify and readParts.
var readers = sync.Pool{New: func() any { return bufio.NewReader(nil) }}

// borrowReader returns a recycled bufio.Reader reading r and the function
// that gives it back once nothing reads from it any more.
func borrowReader(r io.Reader) (*bufio.Reader, func()) {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	return br, func() {
		br.Reset(nil)
		readers.Put(br)
	}
}

// classify reads an entity's MIME header the way enmime.ReadParts does and
// returns its media type, its transfer encoding and, when enmime would
// parse it as a multipart (a multipart/* type with a boundary parameter),
// the boundary. Using enmime's own header reader and media type parser
// here guarantees that every entity handed to enmime as a leaf is parsed by
// it as a single part. For an entity with a plain header it also returns
// what the builder needs to make its part without enmime (plainMIME), so
// that the header is read once.
func classify(header []byte, w *warnings, label string) (mtype, cte, boundary string, plain *plainMIME) {
	ctype, rawCTE, others, isPlain := plainHeader(header)
	if !isPlain {
		var ok bool
		if ctype, rawCTE, ok = enmimeFields(header); !ok {
			return "", "", "", nil
		}
	}
	cte = strings.ToLower(strings.TrimSpace(rawCTE))
	if ctype == "" {
		return "", cte, "", nil
	}
	mtype, params, invalid, err := parseMediaType(ctype)
	if err == nil && len(invalid) == 0 && isPlain && !others {
		plain = &plainMIME{ctype: ctype, cte: rawCTE, params: params}
	}
	if err != nil || !strings.HasPrefix(mtype, "multipart/") {
		return mtype, cte, "", plain
	}
	if params["boundary"] == "" {
		w.addf("%s: %s without a boundary parameter: body kept undecoded as text", label, mtype)
		return mtype, cte, "", nil
	}
	return mtype, cte, params["boundary"], plain
}

// plainMIME is what classify learned of an entity whose header plainHeader
// read, holding no field but Content-Type and perhaps
// Content-Transfer-Encoding, with a Content-Type that enmime parses
// without a warning: the two values as enmime's header keeps them, and the
// type's parameters. plainTextLeaf and containerPart decide on it.
type plainMIME struct {
	ctype, cte string
	params     map[string]string
}

// enmimeFields returns the Content-Type and Content-Transfer-Encoding of
// header as enmime's header reader sees them; false if it fails.
func enmimeFields(header []byte) (ctype, cte string, ok bool) {
	br, giveBack := borrowReader(bytes.NewReader(header))
	h, err := enmime.ReadHeader(br, discardErrors{})
	giveBack()
	if err != nil {
		return "", "", false
	}
	return h.Get("Content-Type"), h.Get("Content-Transfer-Encoding"), true
}

// plainFields is enmimeFields without its cost (a 4 KB buffer and two
// passes per header) for the headers mimeHeader writes: one "Name: value"
// line per field, names from mimeFields, values trimmed. Where a value
// holds a control character other than tab, which enmime's reader would
// treat as a line break or a continuation, it returns false and the
// caller asks enmime (FuzzPlainFields checks the two agree).
func plainFields(header []byte) (ctype, cte string, ok bool) {
	ctype, cte, _, ok = plainHeader(header)
	return ctype, cte, ok
}

// plainHeader is plainFields that also reports whether the header holds
// Content-Disposition or Content-ID (others).
func plainHeader(header []byte) (ctype, cte string, others, ok bool) {
	for len(header) > 0 {
		i := bytes.Index(header, []byte("\r\n"))
		if i < 0 {
			return "", "", false, false
		}
		line := header[:i]
		header = header[i+2:]
		if len(line) == 0 {
			return ctype, cte, others, len(header) == 0
		}
		name, value, found := bytes.Cut(line, []byte(": "))
		if !found {
			return "", "", false, false
		}
		for _, c := range value {
			if c < 0x20 && c != '\t' || c == 0x7f {
				return "", "", false, false
			}
		}
		v := string(bytes.Trim(value, " \t"))
		switch string(name) {
		case "Content-Type":
			ctype = v
		case "Content-Transfer-Encoding":
			cte = v
			others = others || v == "" // enmime keeps the blank field, plainMIME cannot
		case "Content-Disposition", "Content-ID":
			others = true
		default:
			return "", "", false, false
		}
	}
	return "", "", false, false
}

func childID(parent *node, n int) string {
	if parent.id == "" {
		return strconv.Itoa(n)
	}
	return parent.id + "." + strconv.Itoa(n)
}

// label names the entity in warnings.
func (n *node) label() string {
	if n.id == "" {
		return "message"
	}
	return "part " + n.id
}

// discardErrors is an enmime.ErrorCollector for classify; the same header
// problems are reported when enmime parses the entity.
type discardErrors struct{}

func (discardErrors) AddError(string, string, ...any)   {}
func (discardErrors) AddWarning(string, string, ...any) {}
