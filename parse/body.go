package parse

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/inbucket/html2text"
	"github.com/jhillyerd/enmime/v2"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"

	"github.com/mailhook/mailhook/event"
)

// newEnmimeParser returns the enmime parser used for every entity. enmime
// only ever sees single-part entities (split owns the multipart structure)
// and multipart headers with an empty body, so its multipart options are a
// safety net.
func newEnmimeParser(opts ...enmime.Option) *enmime.Parser {
	return enmime.NewParser(append([]enmime.Option{
		enmime.MultipartWOBoundaryAsSinglePart(true),
		enmime.SkipMalformedParts(true),
		enmime.MaxStoredPartErrors(maxPartErrors),
		// Input comes from memory, so a read error is a decoding error
		// (truncated base64, say): keep what decoded, enmime warns.
		enmime.SetReadPartErrorPolicy(func(*enmime.Part, error) bool { return true }),
		// parseBody derives text from HTML itself, within a size cap.
		enmime.DisableTextConversion(true),
		enmime.SetCustomParseMediaType(parseMediaType),
		// Charset detection stays on (enmime's default): it only
		// overrides a declared charset on 100+ characters at 85%
		// confidence. Measured: it kept correct labels (windows-1252,
		// ISO-8859-1/-2/-7, KOI8-R, windows-1250/1251, Shift_JIS,
		// EUC-JP) and repaired UTF-8 labelled us-ascii, the usual lie.
		// builder.build skips it where it cannot change anything.
	}, opts...)...)
}

// declaredAndValid reports whether the text part p, parsed without charset
// detection, declares UTF-8 or US-ASCII and its content is valid in it:
// then detection could not improve on the declaration (it would at best
// agree), so its cost (n-gram scoring of every text part) is saved. enmime
// passes a declared UTF-8 body through unconverted, so p.Content is the
// decoded body itself; a US-ASCII body converts to pure ASCII only if it
// was pure ASCII.
func declaredAndValid(p *enmime.Part) bool {
	switch strings.ToLower(p.Charset) {
	case "utf-8":
		return utf8.Valid(p.Content)
	case "us-ascii":
		return isASCII(p.Content)
	}
	return false
}

// parseBody fills Text, HTML and Attachments, and the warnings met on the way.
func parseBody(d *event.Data, raw []byte, hb headerBlock, opts Options, w *warnings) {
	t := split(raw, hb, opts.MaxDepth, opts.MaxParts, w)
	b := newBuilder(raw, opts, w)
	root := b.build(t.root) // never nil: the root is never too deep
	multipart := b.containers[root]
	var body map[*enmime.Part]bool
	metaConverted := false // the HTML was converted by the charset its <meta> names
	switch {
	case multipart && !opts.enmimeOnly:
		d.Text, d.HTML, body = multipartBody(root)
	case b.plainRoot:
		// A single text part plainTextLeaf made: what EnvelopeFromPart
		// would make of it (its parseTextOnlyBody), which takes only
		// parts of enmime's parsers, without a copy of the body.
		html := root.ContentType == "text/html"
		switch {
		case b.deferred != nil && html:
			d.HTMLBody = b.deferred
			warnNoText(root)
			w.addf("message: no text derived from HTML: %d bytes, more than %d", b.deferred.size, maxHTMLToText)
		case b.deferred != nil:
			d.TextBody = b.deferred
		case html:
			d.HTML = contentString(root)
		default:
			d.Text = contentString(root)
		}
		body = map[*enmime.Part]bool{root: true}
		if d.Text == "" && d.HTML != "" {
			warnNoText(root)
		}
	default:
		env, err := b.parser.EnvelopeFromPart(root)
		if err != nil {
			w.addf("message: MIME structure not interpreted (%v): body kept undecoded as text", err)
			d.Text = validUTF8(string(raw[hb.bodyStart:]))
			return
		}
		d.Text, d.HTML = env.Text, env.HTML
		body = bodyParts(root, env, multipart)
		if multipart && root.ContentType != "multipart/alternative" {
			var all []*enmime.Part
			walk(root, func(p *enmime.Part) {
				if body[p] && isTextBody(p) {
					all = append(all, p)
				}
			})
			parts := textParts(all)
			for _, p := range all {
				if !slices.Contains(parts, p) {
					delete(body, p) // an attachment only (see multipartBody)
				}
			}
			d.Text = joinText(parts) // enmime's text parts, without the blank ones
			if d.Text == "" && env.Text != "" && d.HTML != "" {
				warnNoText(root) // as multipartBody: no text part left
			}
		}
		metaConverted = !multipart && root.ContentType == "text/html" && env.HTML != string(root.Content) && utf8.ValidString(env.HTML)
	}
	if multipart {
		d.HTML = continueHTML(root, d.HTML, body)
	}
	d.Text = validUTF8(d.Text)
	d.HTML = validUTF8(d.HTML)
	if d.Text == "" && d.HTML != "" {
		// enmime has warned "Message did not contain a text/plain part".
		d.Text = textFromHTML(d.HTML, w)
	}

	walk(root, func(p *enmime.Part) {
		label := "message"
		if p.PartID != "" {
			label = "part " + p.PartID
		}
		for _, e := range p.Errors {
			if e == b.cp1252[p] && !body[p] {
				continue // an attachment: its bytes go out as they came
			}
			w.addf("%s: %s: %s", label, e.Name, e.Detail)
		}
		if body[p] && !utf8.Valid(p.Content) && !(p == root && metaConverted) {
			w.addf("%s: %s is not valid %s: invalid bytes replaced with U+FFFD", label, p.ContentType, charsetName(p.Charset))
		}
		if b.containers[p] || (body[p] && p.FileName == "") {
			return
		}
		p.Content = b.attachmentContent(p)
		a := attachment(p, label, opts.MaxAttachmentBytes, w)
		if text, ok := b.encoded[p]; ok && a.Content != nil {
			a.SetContentBase64(text)
		}
		d.Attachments = append(d.Attachments, a)
	})
}

// maxHTMLToText caps the HTML converted to text for messages without a
// text/plain body: html2text runs at about 0.3 µs a byte, and real HTML
// mail is well under 1 MB (Gmail clips at 102 KB).
const maxHTMLToText = 1 << 20

// textFromHTML is enmime's down-conversion (html2text, default options),
// skipped with a warning above maxHTMLToText. html2text writes "> " once per
// level of blockquote on every line: HTML quoted deeper than maxQuoteDepth
// (500 levels over "x<br>" made 1 MB of HTML 104 MB of text) is converted
// without the quote marks, so the text stays about the size of the HTML.
func textFromHTML(htmlText string, w *warnings) string {
	if len(htmlText) > maxHTMLToText {
		w.addf("message: no text derived from HTML: %d bytes, more than %d", len(htmlText), maxHTMLToText)
		return ""
	}
	doc, err := html.Parse(strings.NewReader(strings.TrimPrefix(htmlText, "\uFEFF"))) // as html2text.FromString
	if err != nil {
		w.addf("message: no text derived from HTML: %v", err)
		return ""
	}
	opts := html2text.Options{TextOnly: quoteDepth(doc) > maxQuoteDepth}
	text, err := html2text.FromHTMLNode(doc, opts)
	if err != nil {
		w.addf("message: no text derived from HTML: %v", err)
		return ""
	}
	return validUTF8(text)
}

// maxQuoteDepth is the deepest blockquote nesting textFromHTML marks with
// "> " (a long reply thread in HTML nests a level a reply).
const maxQuoteDepth = 16

// quoteDepth returns the deepest nesting of blockquote elements in doc.
func quoteDepth(doc *html.Node) int {
	type frame struct {
		n     *html.Node
		depth int
	}
	deepest := 0
	stack := []frame{{doc, 0}}
	for len(stack) > 0 {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for c := f.n.FirstChild; c != nil; c = c.NextSibling {
			d := f.depth
			if c.Type == html.ElementNode && c.DataAtom == atom.Blockquote {
				d++
				deepest = max(deepest, d)
			}
			stack = append(stack, frame{c, d})
		}
	}
	return deepest
}

// builder turns the located entities into an enmime part tree, parsing
// each single-part entity on its own.
type builder struct {
	raw        []byte
	parser     *enmime.Parser // with charset detection
	declared   *enmime.Parser // without: trusts the declared charset
	w          *warnings
	maxDepth   int
	containers map[*enmime.Part]bool
	// encoded holds the base64 text of the parts decodeBase64Leaf found
	// canonical (event.Attachment.SetContentBase64).
	encoded map[*enmime.Part][]byte
	// nodes maps each single-part entity's part to its entity, for the
	// bytes behind it (attachmentContent).
	nodes     map[*enmime.Part]*node
	deadline  time.Time // end of the time budget (Options.MaxDuration)
	outOfTime bool
	// stopAt and budgetSpent: Options.StopAt and Options.BudgetSpent.
	stopAt      string
	budgetSpent func(partID string)
	// enmimeOnly: every part is enmime's (Options.enmimeOnly).
	enmimeOnly bool
	// plainRoot: the message is one text part made by plainTextLeaf,
	// not by enmime, so not for EnvelopeFromPart.
	plainRoot bool
	// deferred: that part's body, left to convert as the event is
	// written (its Content is then nil; see deferAbove).
	deferred *recoded
	// maxDetect: text bodies larger are not run through charset
	// detection (maxDetectBody).
	maxDetect int
	// cp1252 holds the parts read as windows-1252 (windows1252,
	// plainTextLeaf) and the warning saying so, which is for a text, not
	// for an attachment's bytes (sent as they came).
	cp1252 map[*enmime.Part]*enmime.Error
}

// newBuilder returns a builder for the entities of raw.
func newBuilder(raw []byte, opts Options, w *warnings) *builder {
	return &builder{
		raw:         raw,
		parser:      newEnmimeParser(),
		declared:    newEnmimeParser(enmime.DisableCharacterDetection(true)),
		w:           w,
		maxDepth:    opts.MaxDepth,
		containers:  make(map[*enmime.Part]bool),
		encoded:     make(map[*enmime.Part][]byte),
		nodes:       make(map[*enmime.Part]*node),
		deadline:    time.Now().Add(opts.MaxDuration),
		stopAt:      opts.StopAt,
		budgetSpent: opts.BudgetSpent,
		enmimeOnly:  opts.enmimeOnly,
		maxDetect:   maxDetectBody,
		cp1252:      make(map[*enmime.Part]*enmime.Error),
	}
}

func (b *builder) build(n *node) *enmime.Part {
	switch {
	case n.tooDeep:
		b.w.addf("%s: %s nested deeper than %d multipart levels: not parsed (%d bytes left out)",
			n.label(), n.mtype, b.maxDepth, n.end-n.start)
		return nil
	case n.id != "" && (b.outOfTime || n.id == b.stopAt || time.Now().After(b.deadline)):
		// The root is always built, so the event keeps its headers.
		if !b.outOfTime {
			b.outOfTime = true
			b.w.addf("%s: parse time budget spent: this part and the rest not decoded", n.label())
			if b.budgetSpent != nil {
				b.budgetSpent(n.id)
			}
		}
		return nil
	case n.boundary != "" && len(n.children) == 0:
		b.w.addf("%s: %s boundary %q never found: body kept undecoded as text", n.label(), n.mtype, n.boundary)
		return b.undecoded(n)
	case n.boundary == "" && strings.HasPrefix(n.mtype, "multipart/"):
		// classify has warned.
		return b.undecoded(n)
	}

	if n.boundary == "" {
		b.recode(n)
		if p := b.decodeBase64Leaf(n); p != nil {
			p.PartID = n.id
			b.nodes[p] = n
			return p
		}
		if p := b.plainTextLeaf(n); p != nil {
			p.PartID = n.id
			b.nodes[p] = n
			b.plainRoot = n.id == ""
			return p
		}
		p, err := b.enmimeLeaf(n)
		if err != nil {
			b.w.addf("%s: not readable as MIME (%v): body kept undecoded as text", n.label(), err)
			return b.undecoded(n)
		}
		if p.FirstChild != nil {
			// classify uses enmime's own header reader and media type
			// parser, so enmime cannot see a multipart here.
			bugs.Add(1)
			p.FirstChild = nil
		}
		p.PartID = n.id
		b.nodes[p] = n
		return p
	}

	// A multipart: its part is made from its header (by containerPart, or
	// by enmime, which finds no parts in the empty body it is given), the
	// children are parsed on their own and linked here.
	p := b.containerPart(n)
	if p == nil {
		var err error
		if p, err = readParts(b.parser, bytes.NewReader(n.header)); err != nil {
			b.w.addf("%s: not readable as MIME (%v): body kept undecoded as text", n.label(), err)
			return b.undecoded(n)
		}
	}
	p.PartID = n.id
	p.FirstChild = nil
	b.containers[p] = true
	var last *enmime.Part
	for _, c := range n.children {
		cp := b.build(c)
		if cp == nil {
			continue
		}
		cp.Parent, cp.NextSibling = p, nil
		if last == nil {
			p.FirstChild = cp
		} else {
			last.NextSibling = cp
		}
		last = cp
	}
	return p
}

// containerPart returns the part enmime reads from the header of the
// multipart n when that header is plain (see plainMIME) and its type has
// no parameter enmime interprets beyond boundary and charset (not name,
// file, modification-date); otherwise nil. enmime would read it through a
// 4 KiB buffer of its own: for a small message, the root's header was the
// largest allocation of the parse. FuzzParseFastPaths checks the result
// against enmime's.
//
// Such a part carries no enmime parser, so it must not be handed to
// enmime's EnvelopeFromPart; parseBody reads a multipart message's body
// without it (multipartBody).
func (b *builder) containerPart(n *node) *enmime.Part {
	t := n.plain
	if t == nil || b.enmimeOnly {
		return nil
	}
	for k := range t.params {
		switch k {
		case "name", "file", "modification-date":
			return nil // enmime's: FileName, FileModDate
		}
	}
	p := &enmime.Part{
		Header:      textproto.MIMEHeader{"Content-Type": {t.ctype}},
		Boundary:    n.boundary,
		ContentType: n.mtype,
		Charset:     t.params["charset"],
		Epilogue:    []byte{}, // what enmime leaves after an empty body
	}
	if t.cte != "" {
		p.Header["Content-Transfer-Encoding"] = []string{t.cte}
	}
	return p
}

// maxDetectBody is the largest text part body enmimeLeaf runs charset
// detection on (builder.maxDetect, which tests lower). Detection parses
// the part a second time, whole (a 24 MB text body took 104 MB of buffers
// between the two parses), to score its bytes; a body this large is
// decoded as it declares.
const maxDetectBody = 4 << 20

// detectedAlready reports whether enmime ran charset detection on the text
// part p even though it was asked not to: with no charset to go by (none
// declared, none in an HTML <meta>) it detects anyway, and p.Charset stays
// empty unless detection picked one. Parsing again with detection on would
// give the same part: for an HTML newsletter, the cost of its parse again.
func detectedAlready(p *enmime.Part) bool { return p.Charset == "" }

// enmimeLeaf has enmime parse the single-part entity n, without charset
// detection where the declared charset is one it could not improve on,
// and reads as windows-1252 what enmime would read as ISO-8859-1 C1
// controls or leave undecoded (windows1252).
func (b *builder) enmimeLeaf(n *node) (*enmime.Part, error) {
	p, err := b.enmimeLeafAsIs(n)
	if err == nil {
		b.windows1252(n, p)
	}
	return p, err
}

// windows1252 fixes two readings of 8-bit text in enmime's part p of the
// entity n. A part labelled ISO-8859-1 whose text has C1 controls
// (U+0080-U+009F, which no mail means) was written in windows-1252, as
// Windows mailers label it and as browsers and mail clients read the
// label (WHATWG): its curly quotes, dashes and euro sign are read as
// such. A text/plain part with no charset at all (RFC 2045: US-ASCII)
// that is not UTF-8 and that detection could not place is read as
// windows-1252 as enmime reads the US-ASCII label, instead of losing
// every 8-bit character to U+FFFD. Both with a warning.
func (b *builder) windows1252(n *node, p *enmime.Part) {
	switch {
	case latin1Label(p.Charset) && hasC1(p.Content):
		raw, ok := b.transferDecoded(n)
		if !ok {
			return
		}
		p.Content = latin1CP1252.append(make([]byte, 0, latin1CP1252.size(raw)), raw)
		b.cp1252[p] = windows1252Label(p.Charset)
		p.Errors = append(p.Errors, b.cp1252[p])
	case p.ContentType == "text/plain" && p.Charset == "" && declaredCharset(p) == "" && !utf8.Valid(p.Content):
		// enmime converted nothing: p.Content is as transfer-decoded.
		b.readAsCP1252(p, "no charset declared and the text is not UTF-8: read as windows-1252")
	case noReader(p) && !utf8.Valid(p.Content):
		// enmime found no reader for the label and kept the bytes as
		// transfer-decoded.
		cs := declaredCharset(p)
		if enc := lookupCharset(cs); enc != nil {
			// One lookupCharset has (charsetAliases: cp949, cp950, …):
			// convert as declared.
			if out, err := enc.NewDecoder().Bytes(p.Content); err == nil {
				p.Content, p.Charset = out, cs
				p.Errors = slices.DeleteFunc(p.Errors, isNoReader)
			}
			return
		}
		// "unknown-8bit" (RFC 1428), "x-unknown", a typo: read as with no
		// charset at all, instead of losing each run of 8-bit characters
		// to one U+FFFD.
		b.readAsCP1252(p, fmt.Sprintf("unknown charset %q and the text is not UTF-8: read as windows-1252", cs))
	}
}

// readAsCP1252 replaces the text part p's content, bytes as
// transfer-decoded, with its windows-1252 reading, and notes it with a
// warning of detail.
func (b *builder) readAsCP1252(p *enmime.Part, detail string) {
	cp1252 := singleByte["windows-1252"]
	p.Content = cp1252.append(make([]byte, 0, cp1252.size(p.Content)), p.Content)
	b.cp1252[p] = &enmime.Error{Name: enmime.ErrorCharsetDeclaration, Detail: detail}
	p.Errors = append(p.Errors, b.cp1252[p])
}

// noReader reports whether enmime found no decoder for the text part p's
// charset, and so kept its bytes as transfer-decoded.
func noReader(p *enmime.Part) bool {
	return (p.ContentType == "text/plain" || p.ContentType == "text/html") && slices.ContainsFunc(p.Errors, isNoReader)
}

func isNoReader(e *enmime.Error) bool {
	return e.Name == enmime.ErrorCharsetConversion && strings.Contains(e.Detail, "failed to get reader")
}

// windows1252Label is the warning on a part labelled charset, an
// ISO-8859-1 label, read as windows-1252.
func windows1252Label(charset string) *enmime.Error {
	return &enmime.Error{Name: enmime.ErrorCharsetDeclaration,
		Detail: fmt.Sprintf("declared charset %q, but the text has windows-1252 characters (bytes 0x80-0x9F): read as windows-1252", charset)}
}

// hasC1Bytes reports whether b, 8-bit text, has a byte in 0x80-0x9F that
// windows-1252 gives a character.
func hasC1Bytes(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 && c <= 0x9f && !slices.Contains(cp1252Undefined[:], c) {
			return true
		}
	}
	return false
}

// latin1Label reports whether enmime reads the charset label as
// ISO-8859-1 proper (its other Latin-1 labels, "latin1" among them, it
// reads as windows-1252 already).
func latin1Label(label string) bool {
	switch strings.ToLower(label) {
	case "iso-8859-1", "iso8859-1", "iso_8859-1", "iso88591", "iso8859_1", "iso_8859-1:1987":
		return true
	}
	return false
}

// hasC1 reports whether the UTF-8 text b holds a C1 control character
// whose byte windows-1252 gives a character.
func hasC1(b []byte) bool {
	for i := bytes.IndexByte(b, 0xc2); i >= 0 && i+1 < len(b); {
		if c := b[i+1]; c >= 0x80 && c <= 0x9f && !slices.Contains(cp1252Undefined[:], c) {
			return true
		}
		j := bytes.IndexByte(b[i+1:], 0xc2)
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// enmimeLeafAsIs is enmimeLeaf before windows1252.
func (b *builder) enmimeLeafAsIs(n *node) (*enmime.Part, error) {
	body := b.leafBody(n)
	p, err := readParts(b.declared, io.MultiReader(bytes.NewReader(n.header), bytes.NewReader(body)))
	if err != nil || !strings.HasPrefix(p.ContentType, "text/") || declaredAndValid(p) {
		return p, err
	}
	declared := strings.ToLower(p.Charset) // as declared: no detection in this parse
	switch {
	case utf7Label(declared):
		// enmime's UTF-7 decoder stops at the first bad sequence (a
		// PGP signature's "+" in a UTF-7 text) and the rest is lost;
		// it has none for "unicode-1-1-utf-7" (IIS's bounces).
		if raw, ok := b.transferDecoded(n); ok {
			out, bad := decodeUTF7(raw)
			p.Content, p.Charset = []byte(out), "utf-7"
			p.Errors = slices.DeleteFunc(p.Errors, func(e *enmime.Error) bool {
				return strings.Contains(e.Detail, "utf7") || strings.Contains(e.Detail, declared)
			})
			if bad > 0 {
				p.Errors = append(p.Errors, &enmime.Error{Name: enmime.ErrorCharsetConversion,
					Detail: fmt.Sprintf("%d invalid UTF-7 sequences replaced with U+FFFD", bad)})
			}
			return p, nil
		}
	case declared == "utf-16" || declared == "utf16":
		// enmime reads "utf-16" as little-endian and keeps a byte order
		// mark as a character; RFC 2781 §4.3 has the mark decide.
		if raw, ok := b.transferDecoded(n); ok {
			out, err := unicode.UTF16(unicode.LittleEndian, unicode.UseBOM).NewDecoder().Bytes(raw)
			if err == nil {
				p.Content, p.Charset = out, "utf-16"
				return p, nil
			}
		}
	case declared == "" || declared == "us-ascii" || declared == "ascii":
		// No charset, or ASCII, but 8-bit bytes that are valid UTF-8:
		// UTF-8 it is (what mailers that omit MIME headers send), at any
		// length; detection needs 100 characters to say so.
		raw, ok := p.Content, true // with no charset at all, enmime converted nothing
		if declared != "" {
			raw, ok = b.transferDecoded(n)
		}
		if ok && !isASCII(raw) && utf8.Valid(raw) {
			p.Content, p.Charset = raw, "utf-8"
			if declaredCharset(p) != "" { // not enmime's default for a part without one
				p.Errors = append(p.Errors, &enmime.Error{Name: enmime.ErrorCharsetDeclaration,
					Detail: fmt.Sprintf("declared charset %q, detected %q (valid UTF-8)", declared, "UTF-8")})
			}
			return p, nil
		}
	}
	if detectedAlready(p) || len(body) > b.maxDetect {
		return p, nil
	}
	pd := p
	if p, err = readParts(b.parser, io.MultiReader(bytes.NewReader(n.header), bytes.NewReader(body))); err != nil {
		return p, err
	}
	if p.OrigCharset != "" && b.siblings(n, p.OrigCharset, p.Charset) {
		// Detection swapped one 8-bit table for a sibling that reads
		// most of the text the same (ISO-8859-1 for ISO-8859-15: they
		// differ in 8 code points, among them € and œ): n-gram scores
		// cannot tell such tables apart, and the sender's label can. A
		// table for another script (windows-1251 text labelled
		// windows-1252), UTF-8 or a multi-byte charset: detection stands.
		return pd, nil
	}
	return p, nil
}

// siblings reports whether the 8-bit charsets declared and detected read
// n's content mostly the same (sameReading).
func (b *builder) siblings(n *node, declared, detected string) bool {
	raw, ok := b.transferDecoded(n)
	return ok && sameReading(raw, declared, detected)
}

// sameReading reports whether the charsets declared and detected are both
// 8-bit tables and read more than half of raw's 8-bit bytes the same.
func sameReading(raw []byte, declared, detected string) bool {
	t1, ok1 := lookupCharset(declared).(*charmap.Charmap)
	t2, ok2 := lookupCharset(detected).(*charmap.Charmap)
	if !ok1 || !ok2 {
		return false
	}
	high, differ := 0, 0
	for _, c := range raw {
		if c < utf8.RuneSelf {
			continue
		}
		high++
		if t1.DecodeByte(c) != t2.DecodeByte(c) {
			differ++
		}
	}
	return high > 0 && differ*2 < high
}

// body returns the body of the single-part entity n as its decoders read
// it: as received unless recode gave it another.
func (b *builder) body(n *node) []byte {
	if n.body != nil {
		return n.body
	}
	return b.raw[n.bodyStart:n.end:n.end]
}

// isASCII reports whether b has no byte above 0x7f.
func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// transferDecoded returns the single-part entity n's body decoded from its
// transfer encoding only, with no charset conversion: enmime decodes it as
// it would the part, told it is application/octet-stream (it converts
// only text/* to UTF-8). ok is false if enmime could not read it.
func (b *builder) transferDecoded(n *node) (content []byte, ok bool) {
	hdr := "Content-Type: application/octet-stream\r\n"
	if n.cte != "" {
		hdr += "Content-Transfer-Encoding: " + n.cte + "\r\n"
	}
	p, err := readParts(b.declared, io.MultiReader(strings.NewReader(hdr+"\r\n"), bytes.NewReader(b.leafBody(n))))
	if err != nil || p.FirstChild != nil {
		return nil, false
	}
	if p.Content == nil {
		return []byte{}, true
	}
	return p.Content, true
}

// readParts is p.ReadParts(r) through a recycled buffered reader: enmime
// wraps r in a new 4 KiB bufio.Reader unless it is one already, and a
// small message has several entities. The parts keep nothing of it.
func readParts(p *enmime.Parser, r io.Reader) (*enmime.Part, error) {
	br, giveBack := borrowReader(r)
	defer giveBack()
	return p.ReadParts(br)
}

// leafBody returns the entity body as handed to enmime: as is, except that
// a base64 body with more than maxPartErrors bytes outside the alphabet is
// cleaned here first. enmime's cleaner allocates an error per such byte and
// keeps them all (2.5 GB for 25 MB of garbage).
func (b *builder) leafBody(n *node) []byte {
	body := b.body(n)
	if n.cte != "base64" {
		return body
	}
	bad := 0
	for _, c := range body {
		if !base64Byte[c] {
			bad++
		}
	}
	if bad <= maxPartErrors {
		return body // enmime warns about each
	}
	b.w.addf("%s: %s: %d bytes outside the base64 alphabet ignored", n.label(), enmime.ErrorMalformedBase64, bad)
	clean := make([]byte, 0, len(body)-bad)
	for _, c := range body {
		if base64Byte[c] {
			clean = append(clean, c)
		}
	}
	return clean
}

// base64LeafMin is the body size from which decodeBase64Leaf decodes a
// clean base64 leaf itself (a variable for tests).
var base64LeafMin = 64 << 10

// decodeBase64Leaf returns the part of a large base64 leaf that is not
// text, decoded into one buffer of the exact size: enmime would decode it
// into a buffer grown step by step, about three times the content in
// garbage, with the raw message still held. It gives the part enmime would
// (enmime parses the header; the content is enmime's pipeline, its base64
// cleaner and an unpadded decoder, done at once), and so it takes only
// bodies where that pipeline has nothing to warn about: nothing outside
// the base64 alphabet, padding and white space, and no dangling sixth
// bit group. Otherwise, or below base64LeafMin, it returns nil.
func (b *builder) decodeBase64Leaf(n *node) *enmime.Part {
	body := b.body(n)
	if n.cte != "base64" || len(body) < base64LeafMin || b.enmimeOnly {
		return nil
	}
	p, err := readParts(b.declared, bytes.NewReader(n.header))
	if err != nil || p.FirstChild != nil || strings.HasPrefix(p.ContentType, "text/") ||
		strings.ToLower(p.Header.Get("Content-Transfer-Encoding")) != "base64" {
		return nil
	}
	content, canonical, ok := decodeBase64Body(body)
	if !ok {
		return nil
	}
	p.Content = content
	if canonical {
		b.encoded[p] = body
	}
	return p
}

// decodeBase64Body decodes body as enmime's pipeline would (its base64
// cleaner and an unpadded decoder) into one buffer of the exact size,
// when that pipeline has nothing to warn about: nothing outside the
// base64 alphabet, padding and white space, and no dangling sixth bit
// group; otherwise ok is false. canonical reports a body that is already
// the event's encoding of the content (padded, zero unused bits, only
// line breaks between the groups: what encoders write).
func decodeBase64Body(body []byte) (content []byte, canonical, ok bool) {
	content = make([]byte, base64.StdEncoding.DecodedLen(len(body)))
	if m, err := base64.StdEncoding.Strict().Decode(content, body); err == nil {
		return content[:m:m], true, true
	}
	digits, ok := base64Digits(body)
	if !ok {
		return nil, false, false
	}
	// Reuse the buffer of the canonical try (one buffer, as before).
	if need := base64.RawStdEncoding.DecodedLen(digits); cap(content) >= need {
		content = content[:0:need]
	} else {
		content = make([]byte, 0, need)
	}
	base64Pieces(body, func(piece []byte) { content = append(content, piece...) })
	return content, false, true
}

// base64Digits counts the base64 digits of body, or reports false where
// enmime's pipeline would warn (decodeBase64Body).
func base64Digits(body []byte) (digits int, ok bool) {
	for _, c := range body {
		switch {
		case !base64Byte[c]:
			return 0, false
		case c != '=' && c != ' ' && c != '\t' && c != '\r' && c != '\n':
			digits++
		}
	}
	return digits, digits%4 != 1 // enmime warns about a corrupt end
}

// base64Pieces decodes body, which base64Digits passed, as
// decodeBase64Body does, a piece at a time: f gets each piece, valid only
// during the call.
func base64Pieces(body []byte, f func([]byte)) {
	var chunk [16 << 10]byte // a multiple of 4
	var out [12 << 10]byte
	k := 0
	flush := func() {
		m, _ := base64.RawStdEncoding.Decode(out[:], chunk[:k]) // only alphabet, never 1 mod 4
		if m > 0 {
			f(out[:m])
		}
		k = 0
	}
	for _, c := range body {
		if c == '=' || c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			continue
		}
		chunk[k] = c
		if k++; k == len(chunk) {
			flush()
		}
	}
	flush()
}

// transferPieces decodes the body of a part in the transfer encoding cte
// (lower case; quoted-printable only clean, see cleanQP) a piece at a
// time: f gets each piece, valid only during the call. It reports false
// where enmime would warn: the pieces f got are then not the content.
func transferPieces(cte string, body []byte, f func([]byte)) bool {
	switch cte {
	case "base64":
		if _, ok := base64Digits(body); !ok {
			return false
		}
		base64Pieces(body, f)
		return true
	case "quoted-printable":
		qr, done := newQPReader(body)
		defer done()
		var buf [32 << 10]byte
		for {
			m, err := qr.Read(buf[:])
			if m > 0 {
				f(buf[:m])
			}
			if err == io.EOF {
				return true
			}
			if err != nil {
				return false
			}
		}
	}
	f(body)
	return true
}

// plainTextLeaf returns the part enmime would for the most common entity
// of all, a text/plain or text/html body part in UTF-8 or US-ASCII, as
// declared and valid, in 7bit, 8bit, binary, clean quoted-printable or
// clean base64; and for a part too large for charset detection
// (maxDetectBody), one in a common 8-bit or multi-byte charset
// (singleByte, multiByte), converted as declared (a declared charset also outranks an HTML <meta> for
// enmime). Otherwise nil. enmime would read its header through a
// 4 KiB buffer of its own and copy its body twice: for the two such parts
// of a small multipart/alternative message that is a quarter of the parse
// (BenchmarkParse/multipart2KB); for a large body, its decoders grow
// their buffers step by step, up to twice the content in garbage.
//
// It takes only what enmime reads without a warning and the same way
// whichever of the builder's parsers reads it (for the root, parseBody
// then makes the text or HTML itself: enmime's EnvelopeFromPart takes only
// parts of its parsers), with a header of Content-Type and perhaps
// Content-Transfer-Encoding, no
// parameter enmime interprets beyond charset, and, for quoted-printable,
// a body that enmime's cleaner passes unchanged (cleanQP), for base64 one
// its pipeline decodes without a warning (decodeBase64Body).
// FuzzPlainTextLeaf checks that the parts are enmime's.
func (b *builder) plainTextLeaf(n *node) *enmime.Part {
	t := n.plain
	if t == nil || b.enmimeOnly || (n.mtype != "text/plain" && n.mtype != "text/html") {
		return nil
	}
	for k := range t.params {
		switch k {
		case "name", "file", "boundary", "modification-date":
			return nil // enmime's: FileName, Boundary, FileModDate
		}
	}
	body := b.body(n)
	p := &enmime.Part{ContentType: n.mtype, Charset: t.params["charset"]}
	var table *byteTable
	var enc encoding.Encoding
	switch cs := strings.ToLower(p.Charset); cs {
	case "utf-8", "us-ascii":
	default:
		// enmimeLeaf reads a part too large for detection as declared.
		if len(body) <= b.maxDetect {
			return nil
		}
		if table = singleByte[cs]; table == nil {
			if enc = multiByte[cs]; enc == nil {
				return nil
			}
		}
	}
	cte := strings.ToLower(t.cte) // as enmime reads it
	switch cte {
	case "", "7bit", "8bit", "binary", "base64":
	case "quoted-printable":
		if !cleanQP(body) {
			return nil
		}
	default:
		return nil
	}
	// The body of a single-part message may be left to convert as the
	// event is written (deferAbove).
	deferring := n.id == "" && !b.enmimeOnly
	switch {
	case enc != nil && deferring:
		size, ok := decodedSize(cte, body, enc)
		if !ok {
			return nil
		}
		if size <= deferAbove {
			p.Content, ok = decodeSized(cte, body, enc, size)
			if !ok {
				return nil
			}
			break
		}
		b.deferred = &recoded{cte: cte, body: body, enc: enc, size: size}
	case enc != nil:
		var ok bool
		if p.Content, ok = decodePieces(cte, body, enc); !ok {
			return nil
		}
	case table != nil:
		// Decoded a piece at a time, twice: to size the text, then to
		// fill it. No buffer for the content in its charset.
		size, c1 := 0, false
		if !transferPieces(cte, body, func(piece []byte) {
			size += table.size(piece)
			c1 = c1 || hasC1Bytes(piece)
		}) {
			return nil
		}
		if deferring && size > deferAbove {
			b.deferred = &recoded{cte: cte, body: body, table: table, size: size}
		} else {
			p.Content = make([]byte, 0, size)
			transferPieces(cte, body, func(piece []byte) { p.Content = table.append(p.Content, piece) })
		}
		if c1 && latin1Label(p.Charset) {
			b.cp1252[p] = windows1252Label(p.Charset) // as enmimeLeaf
			p.Errors = []*enmime.Error{b.cp1252[p]}
		}
	case cte == "quoted-printable":
		// Decoding never grows the text: with one byte to spare the
		// buffer cannot fill before the end.
		content, ok := decodeQP(make([]byte, 0, len(body)+1), body)
		if !ok || len(content) == cap(content) {
			return nil // enmime keeps what decoded, with a warning
		}
		p.Content = content
	case cte == "base64":
		var ok bool
		if p.Content, _, ok = decodeBase64Body(body); !ok {
			return nil
		}
	default:
		p.Content = body
	}
	if table == nil && enc == nil && !declaredAndValid(p) {
		return nil
	}
	p.Header = textproto.MIMEHeader{"Content-Type": {t.ctype}}
	if t.cte != "" {
		p.Header["Content-Transfer-Encoding"] = []string{t.cte}
	}
	return p
}

// cleanQP reports whether enmime's quoted-printable cleaner passes body
// unchanged: only printable ASCII, tab, CR and LF, every "=" followed by
// two hex digits or a line break, and no line (counted as the cleaner
// does, from any CR or LF) long enough for it to break.
func cleanQP(body []byte) bool {
	const maxLine = 1000 // the cleaner breaks lines at 1024
	line := 0
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '\r' || c == '\n':
			line = 0
			continue
		case c == '=':
			rest := body[i+1:]
			switch {
			case len(rest) > 0 && rest[0] == '\n',
				len(rest) > 1 && rest[0] == '\r' && rest[1] == '\n':
			case len(rest) > 1 && hexDigit(rest[0]) && hexDigit(rest[1]):
			default:
				return false
			}
		case c != '\t' && (c < ' ' || c > '~'):
			return false
		}
		if line++; line > maxLine {
			return false
		}
	}
	return true
}

func hexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' || 'a' <= c && c <= 'f'
}

// base64Byte marks the bytes a base64 body may hold: the alphabet, padding
// and line white space (RFC 2045 §6.8).
var base64Byte = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \t\r\n") {
		t[c] = true
	}
	return t
}()

// undecoded is the fallback for an entity enmime cannot take: its body,
// as is, as a text/plain part without header.
func (b *builder) undecoded(n *node) *enmime.Part {
	p := enmime.NewPart("text/plain")
	p.PartID = n.id
	p.Content = []byte(validUTF8(string(b.raw[n.bodyStart:n.end])))
	return p
}

// bodyParts returns the parts enmime.EnvelopeFromPart took Text and HTML
// from, by the same rules (enmime v2.3.0 envelope.go) and with enmime's
// own tree searches: for a multipart message it is the reference
// multipartBody is tested against (Options.enmimeOnly).
func bodyParts(root *enmime.Part, env *enmime.Envelope, multipart bool) map[*enmime.Part]bool {
	body := make(map[*enmime.Part]bool)
	if !multipart {
		if !slices.Contains(env.Attachments, root) && !slices.Contains(env.Inlines, root) {
			body[root] = true
		}
		return body
	}
	if root.ContentType == "multipart/alternative" {
		if p := root.BreadthMatchFirst(isTextBody); p != nil {
			body[p] = true
		}
	} else {
		for _, p := range root.DepthMatchAll(isTextBody) {
			body[p] = true
		}
	}
	if p := root.DepthMatchFirst(isHTMLBody); p != nil {
		body[p] = true
	}
	return body
}

// continueHTML returns html, the content of the message's first HTML part
// (enmime's choice, marked in body), followed by that of the HTML parts
// that continue it: its later siblings in a multipart/mixed that are HTML
// bodies naming no file. Apple Mail writes a message with a file put in
// its middle so (the HTML, the file, the rest of the HTML), and mail
// clients show the parts one after the other; without this the rest would
// be a nameless inline attachment and missing from the text. The parts
// joined are marked in body. A footer a mailing list adds after a
// multipart/alternative is not joined: its parent is the alternative's.
func continueHTML(root *enmime.Part, html string, body map[*enmime.Part]bool) string {
	first := root.DepthMatchFirst(isHTMLBody)
	if first == nil || !body[first] || first.Parent == nil || first.Parent.ContentType != "multipart/mixed" {
		return html
	}
	for p := first.NextSibling; p != nil; p = p.NextSibling {
		if isHTMLBody(p) && p.FileName == "" && p.FirstChild == nil {
			html += contentString(p)
			body[p] = true
		}
	}
	return html
}

// isTextBody and isHTMLBody match the parts enmime takes a message's Text
// and HTML from.
func isTextBody(p *enmime.Part) bool {
	return p.ContentType == "text/plain" && p.Disposition != "attachment"
}

// textParts returns the text parts of a multipart that is not an
// alternative that make its text: all but those naming a file without an
// inline disposition (notes.txt attached, which enmime would join to the
// text and list as an attachment as well), unless that leaves none.
func textParts(all []*enmime.Part) []*enmime.Part {
	var parts []*enmime.Part
	for _, p := range all {
		if !namedFile(p) {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return all // only files: they are what there is to read
	}
	return parts
}

// namedFile reports whether p names a file and does not ask to be shown
// inline.
func namedFile(p *enmime.Part) bool {
	return p.FileName != "" && !strings.EqualFold(p.Disposition, "inline")
}

func isHTMLBody(p *enmime.Part) bool {
	return p.ContentType == "text/html" && p.Disposition != "attachment"
}

// multipartBody is what enmime.EnvelopeFromPart (v2.3.0, envelope.go)
// makes of the multipart message root, without it: the Text, the HTML,
// and the parts they were taken from, and the warning on root when there
// is HTML but no text. Text is the first text/plain part
// not an attachment, breadth first, of a multipart/alternative, and
// every such part not naming a file (namedFile), depth first, joined
// (joinText), of any other multipart; HTML the first text/html part not an attachment, depth first.
// FuzzParseFastPaths checks it against enmime.
func multipartBody(root *enmime.Part) (text, html string, body map[*enmime.Part]bool) {
	body = make(map[*enmime.Part]bool)
	if root.ContentType == "multipart/alternative" {
		// Breadth first, as enmime's BreadthMatchFirst, without its list.
		queue := []*enmime.Part{root}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			if isTextBody(p) {
				text = contentString(p)
				body[p] = true
				break
			}
			for c := p.FirstChild; c != nil; c = c.NextSibling {
				queue = append(queue, c)
			}
		}
	} else {
		var all []*enmime.Part
		walk(root, func(p *enmime.Part) {
			if isTextBody(p) {
				all = append(all, p)
			}
		})
		parts := textParts(all)
		for _, p := range parts {
			body[p] = true
		}
		text = joinText(parts)
	}
	var found *enmime.Part
	walk(root, func(p *enmime.Part) {
		if found == nil && isHTMLBody(p) {
			found = p
		}
	})
	if found != nil {
		html = contentString(found)
		body[found] = true
	}
	if text == "" && html != "" {
		warnNoText(root)
	}
	return text, html, body
}

// joinText joins the text parts of a multipart that is not an
// alternative as enmime does, by "\n--\n" (by "\r\n--\r\n" where the
// first part's lines end in CRLF, as mail's do: enmime's separator would
// mix the two), but leaves out the parts that are empty or only white
// space (mailers put them between attachments): enmime would join them
// too, each adding a separator.
func joinText(parts []*enmime.Part) string {
	var only *enmime.Part
	n := 0
	for _, p := range parts {
		if len(bytes.TrimSpace(p.Content)) > 0 {
			only, n = p, n+1
		}
	}
	if n == 1 {
		return contentString(only) // nothing to join: no copy
	}
	var b strings.Builder
	sep := "\n--\n"
	for _, p := range parts {
		if len(bytes.TrimSpace(p.Content)) == 0 {
			continue
		}
		if b.Len() == 0 && bytes.Contains(p.Content, []byte("\r\n")) {
			sep = "\r\n--\r\n"
		}
		if b.Len() > 0 {
			b.WriteString(sep)
		}
		b.Write(p.Content)
	}
	return b.String()
}

// contentString returns p's content as a string, without a copy (a
// message's text may be most of it). It relies on what holds throughout
// this package: a part's content is never written to once the part is
// built (decoders make new buffers, and the raw message a body part may
// share is only read).
func contentString(p *enmime.Part) string {
	return unsafe.String(unsafe.SliceData(p.Content), len(p.Content))
}

// warnNoText adds to root the warning enmime.EnvelopeFromPart adds when
// a message has HTML but no text (within the parser's cap on a part's
// problems).
func warnNoText(root *enmime.Part) {
	if len(root.Errors) < maxPartErrors {
		root.Errors = append(root.Errors, &enmime.Error{
			Name:   enmime.ErrorPlainTextFromHTML,
			Detail: "Message did not contain a text/plain part",
		})
	}
}

// charsetName names the charset a text part was decoded from.
func charsetName(cs string) string {
	if cs == "" {
		return "US-ASCII (no charset declared)"
	}
	return "in its declared charset " + strconv.Quote(cs)
}

// walk visits the tree depth first, in document order.
func walk(p *enmime.Part, visit func(*enmime.Part)) {
	for ; p != nil; p = p.NextSibling {
		visit(p)
		walk(p.FirstChild, visit)
	}
}

// attachmentContent is the content of a part handed out as an attachment:
// its bytes as sent, decoded from the transfer encoding only. enmime
// converts every text/* part (and a part without a type, text/plain by
// default) to UTF-8, which for a file changes the bytes the sender
// attached (a CSV in windows-1251, an XML file whose prolog names its
// encoding, a binary without a Content-Type); for those they are decoded
// again, without conversion.
func (b *builder) attachmentContent(p *enmime.Part) []byte {
	n := b.nodes[p]
	if n == nil || !strings.HasPrefix(p.ContentType, "text/") && p.ContentType != "" {
		return p.Content
	}
	if p.OrigCharset == "" && declaredAndValid(p) {
		// Declared UTF-8 (or ASCII) and valid: enmime passed the bytes
		// through as they were, and a large file is not decoded twice.
		return p.Content
	}
	if raw, ok := b.transferDecoded(n); ok {
		return raw
	}
	return p.Content
}

// attachment describes a non-body part. Content is the part decoded from
// its transfer encoding, as sent (attachmentContent); a text part's
// content_type carries the charset it declared, unless UTF-8 or ASCII.
func attachment(p *enmime.Part, label string, maxBytes int64, w *warnings) event.Attachment {
	content := p.Content
	if content == nil {
		content = []byte{}
	}
	sum := sha256.Sum256(content)
	a := event.Attachment{
		Filename:    filename(p.FileName, label, w),
		ContentType: p.ContentType,
		Size:        int64(len(content)),
		ContentID:   contentID(p),
		SHA256:      hex.EncodeToString(sum[:]),
		Content:     content,
	}
	if a.ContentType == "" {
		a.ContentType = "application/octet-stream"
	}
	if strings.HasPrefix(a.ContentType, "text/") {
		// The parameters the bytes need to be read: a charset other than
		// UTF-8, and a calendar's method (RFC 5545 §8.1: REQUEST,
		// CANCEL, REPLY…, what a scheduler acts on).
		_, declared, _, _ := parseMediaType(p.Header.Get("Content-Type"))
		params := map[string]string{}
		if cs := declared["charset"]; cs != "" && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
			params["charset"] = cs
		}
		if m := declared["method"]; m != "" && a.ContentType == "text/calendar" {
			params["method"] = m
		}
		if len(params) > 0 {
			if ct := mime.FormatMediaType(a.ContentType, params); ct != "" {
				a.ContentType = ct
			}
		}
	}
	switch d := strings.ToLower(p.Disposition); {
	case d == "inline" || d == "attachment":
		a.Disposition = d
	case a.ContentID != "" || a.Filename == "" && strings.HasPrefix(p.ContentType, "text/"):
		// No disposition, and referenced from HTML (cid:, RFC 2392), or
		// text without a name: a part of the message as composed (a
		// second HTML part, a calendar invitation), shown inline by mail
		// clients.
		a.Disposition = "inline"
	default:
		a.Disposition = "attachment"
	}
	if maxBytes > 0 && a.Size > maxBytes {
		name := a.Filename
		if name == "" {
			name = a.ContentType
		}
		w.addf("%s: attachment %s omitted: %d bytes, larger than %d", label, quote(name), a.Size, maxBytes)
		a.Content = nil
	}
	return a
}

// declaredCharset is the charset parameter of p's Content-Type, "" if none.
func declaredCharset(p *enmime.Part) string {
	_, params, _, err := parseMediaType(p.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return params["charset"]
}

// filename returns the decoded filename (RFC 2231/2047, by enmime) as
// given, except that it is never a path: anything up to the last slash or
// backslash is dropped, and "." or ".." become "".
func filename(name, label string, w *warnings) string {
	name = validUTF8(name)
	base := name
	if i := strings.LastIndexAny(base, `/\`); i >= 0 {
		base = base[i+1:]
	}
	if base == "." || base == ".." {
		base = ""
	}
	if base != name {
		w.addf("%s: filename %s is a path: kept %s", label, quote(name), quote(base))
	}
	return base
}

// contentID returns the Content-ID header (RFC 2045 §7) without angle
// brackets and otherwise as written (enmime's Part.ContentID is
// URL-unescaped, which turns "+" into a space).
func contentID(p *enmime.Part) string {
	var keys []string
	for k, v := range p.Header {
		if strings.EqualFold(k, "Content-ID") && len(v) > 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return ""
	}
	slices.Sort(keys) // deterministic should the map hold two spellings
	return validUTF8(firstMsgID(p.Header[keys[0]][0]))
}

// decodeQP decodes the quoted-printable body into content's spare capacity
// until it is full or body ends, and reports whether decoding succeeded.
func decodeQP(content, body []byte) ([]byte, bool) {
	qr, done := newQPReader(body)
	defer done()
	for len(content) < cap(content) {
		m, err := qr.Read(content[len(content):cap(content)])
		content = content[:len(content)+m]
		if err == io.EOF {
			break
		}
		if err != nil {
			return content, false
		}
	}
	return content, true
}

// newQPReader returns a quoted-printable reader of body, and the function
// to call when done with it. The bufio.Reader that quotedprintable.NewReader
// would allocate (4 KiB a part) comes from a pool: NewReader uses a
// *bufio.Reader of that size as it is.
func newQPReader(body []byte) (qr *quotedprintable.Reader, done func()) {
	r := qpReaders.Get().(*qpReader)
	r.body.Reset(body)
	r.br.Reset(&r.body)
	return quotedprintable.NewReader(r.br), func() {
		r.br.Reset(nil) // pin nothing in the pool
		r.body.Reset(nil)
		qpReaders.Put(r)
	}
}

type qpReader struct {
	body bytes.Reader
	br   *bufio.Reader
}

var qpReaders = sync.Pool{New: func() any { return &qpReader{br: bufio.NewReaderSize(nil, 4096)} }}
