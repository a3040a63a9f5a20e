package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Tokens tie a webhook to the message that caused it. Each message carries
// its token in Subject, Message-ID and the first line of the text part
// (all before any filler, so the per-message part of a template stays small):
//
//	mhb<run:8 hex>-<seq:10 digits>      e.g. mhb1f2e3d4c-0000004711
//
// The run id keeps webhooks left over from earlier runs against the same
// store (pending deliveries finishing late) from counting as this run's.
const (
	tokenPrefix = "mhb"
	runIDLen    = 8
	seqLen      = 10
	tokenLen    = len(tokenPrefix) + runIDLen + 1 + seqLen
	maxSeq      = 9_999_999_999
)

// newRunID returns a random run id of runIDLen lowercase hex digits.
func newRunID() string {
	return fmt.Sprintf("%08x", rand.Uint32())
}

// putToken writes the token of (run, seq) into dst[:tokenLen] without
// allocating.
func putToken(dst []byte, run string, seq uint64) {
	_ = dst[tokenLen-1]
	n := copy(dst, tokenPrefix)
	n += copy(dst[n:], run)
	dst[n] = '-'
	for i := tokenLen - 1; i > n; i-- {
		dst[i] = byte('0' + seq%10)
		seq /= 10
	}
}

// findToken returns the sequence number of the first token of run in b.
func findToken(b []byte, run string) (uint64, bool) {
	var pfx [len(tokenPrefix) + runIDLen + 1]byte
	copy(pfx[:], tokenPrefix)
	copy(pfx[len(tokenPrefix):], run)
	pfx[len(pfx)-1] = '-'
	for {
		i := bytes.Index(b, pfx[:])
		if i < 0 {
			return 0, false
		}
		b = b[i+len(pfx):]
		if len(b) < seqLen {
			return 0, false
		}
		var seq uint64
		ok := true
		for _, c := range b[:seqLen] {
			if c < '0' || c > '9' {
				ok = false
				break
			}
			seq = seq*10 + uint64(c-'0')
		}
		if ok {
			return seq, true
		}
	}
}

// attachmentThreshold: above this size a message carries a PDF attachment
// that makes up most of its bytes, as real large mail does.
const attachmentThreshold = 64 << 10

// template is a pre-built message, already in SMTP DATA form: CRLF line
// ends, no line starting with '.', terminated by "\r\n.\r\n". Only its head
// (the bytes up to the last token) differs between messages: each sender
// keeps a private copy of the head and patches the token in place, and all
// senders share the read-only tail.
type template struct {
	head    []byte // wire[:len(head)]; contains every token slot
	tail    []byte // the rest, including the terminating ".\r\n"
	offsets []int  // token slots in head
	size    int    // message size: DATA bytes without the final ".\r\n"
}

// placeholder fills the token slots of the template before patching.
var placeholder = strings.Repeat("X", tokenLen)

// buildTemplate builds a realistic MIME message of exactly size bytes (or
// the smallest message the structure allows, if size is smaller):
// multipart/alternative text+HTML and, above attachmentThreshold, inside a
// multipart/mixed with a base64 application/pdf attachment filling the
// rest. from and rcpt go into the From and To header fields.
func buildTemplate(size int, from, rcpt string) (*template, error) {
	if size < 0 {
		return nil, errors.New("negative size")
	}
	date := time.Now().UTC().Format(time.RFC1123Z)
	var att []byte // base64 lines, CRLF-terminated
	if size > attachmentThreshold {
		// Size the attachment to leave the text parts about 8 KB.
		skeleton := assemble(date, from, rcpt, 0, 0, []byte{})
		avail := size - len(skeleton) - 8<<10
		raw := avail / 78 * 57
		for raw > 0 && encodedLines(raw) > avail {
			raw -= 3
		}
		if raw > 0 {
			att = encodeAttachment(pseudoPDF(raw))
		}
	}
	fixed := len(assemble(date, from, rcpt, 0, 0, att))
	fill := max(size-fixed, 0)
	wire := assemble(date, from, rcpt, fill-fill/2, fill/2, att)
	msgSize := len(wire)
	wire = append(wire, ".\r\n"...)

	// Find the token slots; the head ends after the last one.
	t := &template{size: msgSize}
	end := 0
	for i := 0; ; {
		j := bytes.Index(wire[i:], []byte(placeholder))
		if j < 0 {
			break
		}
		t.offsets = append(t.offsets, i+j)
		i += j + tokenLen
		end = i
	}
	if len(t.offsets) == 0 {
		return nil, errors.New("template has no token slot")
	}
	t.head, t.tail = wire[:end:end], wire[end:]
	return t, nil
}

// encodedLines is the size of n raw bytes in base64 with 76-character lines,
// each ending in CRLF.
func encodedLines(n int) int {
	enc := base64.StdEncoding.EncodedLen(n)
	return enc + 2*((enc+75)/76)
}

// encodeAttachment returns raw in base64, 76-character lines with CRLF.
func encodeAttachment(raw []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(raw)
	out := make([]byte, 0, encodedLines(len(raw)))
	for len(enc) > 0 {
		n := min(76, len(enc))
		out = append(out, enc[:n]...)
		out = append(out, "\r\n"...)
		enc = enc[n:]
	}
	return out
}

// pseudoPDF returns n bytes that start like a PDF and continue with
// incompressible pseudo-random data (as compressed PDF streams are).
func pseudoPDF(n int) []byte {
	b := make([]byte, n)
	hdr := "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Length " + strconv.Itoa(n) + " /Filter /FlateDecode >>\nstream\n"
	k := copy(b, hdr)
	r := rand.New(rand.NewPCG(1, 2))
	i := k
	for ; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	for ; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

const (
	boundaryMixed = "=_mailhook-bench-mixed-7f3a9c"
	boundaryAlt   = "=_mailhook-bench-alt-2b81de"
)

// assemble writes the message with textFill and htmlFill filler bytes in
// the text and HTML parts, and att (already encoded) as the attachment if
// it is non-nil. The result's length grows by exactly textFill+htmlFill.
func assemble(date, from, rcpt string, textFill, htmlFill int, att []byte) []byte {
	var b bytes.Buffer
	b.Grow(textFill + htmlFill + len(att) + 4096)
	w := func(s ...string) {
		for _, x := range s {
			b.WriteString(x)
		}
	}
	w("From: Load Generator <", from, ">\r\n",
		"To: <", rcpt, ">\r\n",
		"Subject: mailhook-bench ", placeholder, "\r\n",
		"Message-ID: <", placeholder, "@mailhook-bench.invalid>\r\n",
		"Date: ", date, "\r\n",
		"MIME-Version: 1.0\r\n",
		"X-Mailer: mailhook-bench\r\n")
	if att != nil {
		w("Content-Type: multipart/mixed; boundary=\"", boundaryMixed, "\"\r\n",
			"\r\n",
			"This is a multi-part message in MIME format.\r\n",
			"\r\n--", boundaryMixed, "\r\n")
	}
	w("Content-Type: multipart/alternative; boundary=\"", boundaryAlt, "\"\r\n",
		"\r\n")
	if att == nil {
		w("This is a multi-part message in MIME format.\r\n\r\n")
	}
	w("--", boundaryAlt, "\r\n",
		"Content-Type: text/plain; charset=utf-8\r\n",
		"Content-Transfer-Encoding: 7bit\r\n",
		"\r\n",
		"Hello,\r\n",
		"\r\n",
		"this is load-generator message ", placeholder, ".\r\n",
		"\r\n")
	filler(&b, textFill)
	w("\r\n",
		"--", boundaryAlt, "\r\n",
		"Content-Type: text/html; charset=utf-8\r\n",
		"Content-Transfer-Encoding: 7bit\r\n",
		"\r\n",
		"<html><body><p>Hello,</p><p>this is a load-generator message.</p>\r\n",
		"<p>\r\n")
	filler(&b, htmlFill)
	w("\r\n</p></body></html>\r\n",
		"--", boundaryAlt, "--\r\n")
	if att != nil {
		w("\r\n--", boundaryMixed, "\r\n",
			"Content-Type: application/pdf; name=\"report.pdf\"\r\n",
			"Content-Disposition: attachment; filename=\"report.pdf\"\r\n",
			"Content-Transfer-Encoding: base64\r\n",
			"\r\n")
		b.Write(att)
		w("--", boundaryMixed, "--\r\n")
	}
	return b.Bytes()
}

const lorem = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua "

// filler writes exactly n bytes of plain words in lines of about 76
// characters: CRLF is written only where at least one more character
// follows, so any n works and no line is empty or starts with '.'.
func filler(b *bytes.Buffer, n int) {
	col, k := 0, 0
	for n > 0 {
		if col >= 76 && n >= 3 {
			b.WriteString("\r\n")
			n -= 2
			col = 0
			continue
		}
		c := lorem[k%len(lorem)]
		k++
		if col == 0 && c == ' ' {
			c = 'x'
		}
		b.WriteByte(c)
		n--
		col++
	}
}

// parseSize parses sizes like 2048, 2KB, 1MB, 25MB (binary units: KB is
// 1024 bytes, as mail size limits conventionally are; KiB/MiB/K/M too).
func parseSize(s string) (int, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 || n*float64(mult) > 1<<30 {
		return 0, fmt.Errorf("bad size %q (want e.g. 2KB, 1MB, 25MB; at most 1GB)", s)
	}
	return int(n * float64(mult)), nil
}
