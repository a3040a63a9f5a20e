//go:build ignore

// gen writes the hostile SMTP corpus in this directory (see README.md for
// the file format). Run from the repository root:
//
//	go run ./inbound/testdata/hostile/gen.go
//
// The files are committed; rerunning rewrites them (tls-clienthello.smtp
// gets a new random ClientHello, everything else comes out the same).
package main

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
)

var dir = filepath.Join("inbound", "testdata", "hostile")

const (
	hello    = "EHLO hostile.test\r\n"
	envelope = "EHLO hostile.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
	quit     = "QUIT\r\n"
	// The replies to envelope, after the implicit banner.
	envReplies = "250, 250 2.1.0, 250 2.1.5, 354"
)

// write stores one case; gz compresses it (for the big ones).
func write(name, directives, session string, gz bool) {
	var b bytes.Buffer
	for _, l := range strings.Split(strings.TrimSpace(directives), "\n") {
		b.WriteString("# " + strings.TrimSpace(l) + "\n")
	}
	b.WriteString(session)
	path := filepath.Join(dir, name+".smtp")
	data := b.Bytes()
	if gz {
		path += ".gz"
		var z bytes.Buffer
		w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		w.Write(data)
		w.Close()
		data = z.Bytes()
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		log.Fatal(err)
	}
}

// message wraps a body into one whole transaction ending with QUIT.
func message(body string) string { return envelope + body + "\r\n.\r\n" + quit }

const oneMessage = "expect: " + envReplies + ", 250 2.0.0, 221 2.0.0, closed\nmessages: 1"

func main() {
	// Bare line ends in the body: normalised (default) or refused.
	write("bare-lf-body", "Bare LF line ends in DATA are normalised to CRLF, never end the data.\n"+oneMessage,
		message("Subject: bare LF\n\nline one\nline two\n.\nstill data"), false)
	write("bare-cr-body", "Bare CR line ends in DATA are normalised to CRLF, never end the data.\n"+oneMessage,
		message("Subject: bare CR\r\rline one\rline two\r.\rstill data"), false)
	write("bare-lf-reject", "bare-newline: reject\nexpect: "+envReplies+", 550 5.5.2, 221 2.0.0, closed\nmessages: 0",
		message("Subject: bare LF\n\nline one\n"), false)

	// SMTP smuggling (CVE-2023-51764..6): an end-of-data look-alike, then
	// a second transaction inside the first DATA.
	const smuggled = "MAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nFrom: ceo@example.com\r\n\r\nsmuggled\r\n"
	for _, v := range []struct{ name, sep string }{
		{"lf-dot-lf", "\n.\n"}, {"crlf-dot-lf", "\r\n.\n"}, {"lf-dot-crlf", "\n.\r\n"},
		{"cr-dot-cr", "\r.\r"}, {"crlf-dot-cr", "\r\n.\r"}, {"cr-dot-crlf", "\r.\r\n"},
		{"lf-dotdot-lf", "\n..\n"}, {"crlf-dot-cr-crlf", "\r\n.\r\r\n"}, {"crlf-dot-space-crlf", "\r\n. \r\n"},
		{"crlf-dot-nul-crlf", "\r\n.\x00\r\n"},
	} {
		// The real end follows the smuggled part: one message, and the
		// smuggled MAIL is never answered.
		write("smuggle-"+v.name, "A fake end of data "+fmt.Sprintf("%q", v.sep)+" followed by a smuggled transaction.\n"+oneMessage,
			envelope+"Subject: first\r\n\r\nfirst"+v.sep+smuggled+".\r\n"+quit, false)
	}
	write("smuggle-lf-dot-lf-reject", "bare-newline: reject\nexpect: "+envReplies+", 550 5.5.2, 221 2.0.0, closed\nmessages: 0",
		envelope+"Subject: first\r\n\r\nfirst\n.\n"+smuggled+".\r\n"+quit, false)
	write("smuggle-bdat", "BDAT data holds commands: they are data.\nexpect: 250, 250 2.1.0, 250 2.1.5, 250 2.0.0, 221 2.0.0, closed\nmessages: 1",
		hello+"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nBDAT "+fmt.Sprint(len(smuggled)+5)+" LAST\r\n.\r\n\r\n"+smuggled+quit, false)

	// Long lines.
	mb := strings.Repeat("A", 1<<20)
	write("long-line-data-1mb", "A 1 MiB data line: fine, only the size limit counts.\n"+oneMessage, message("Subject: long\r\n\r\n"+mb), true)
	write("long-line-data-unterminated", "1 MiB of data without any CRLF, then EOF: nothing is accepted.\nexpect: "+envReplies+", closed\nmessages: 0",
		envelope+mb, true)
	write("long-line-command-1mb", "A 1 MiB command line without CRLF: 500, then 421, and closed after 64 KiB.\nexpect: 500 5.5.2, 421 4.7.0, closed", mb, true)
	write("huge-command-lines", "Command lines over RFC 5321's limits get 500 5.5.2; the session goes on.\nexpect: 500 5.5.2, 500 5.5.2, 500 5.5.2, 250, 250 2.0.0, 221 2.0.0, closed",
		"NOOP "+strings.Repeat("x", 600)+"\r\n"+
			"MAIL FROM:<a@example.org> "+strings.Repeat("x", 2000)+"\r\n"+
			"EHLO "+strings.Repeat("h", 10000)+"\r\n"+
			hello+"NOOP\r\n"+quit, false)

	// NUL octets.
	write("nul-in-commands", "NUL octets in commands are syntax errors, never truncate.\n"+
		"expect: 501 5.5.4, 500 5.5.2, 500 5.5.2, 250, 501 5.5.4, 501 5.5.4, 250 2.1.0, 501 5.5.4, 250 2.1.5, 354, 250 2.0.0, 221 2.0.0, closed\nmessages: 1",
		"EHLO a\x00b\r\n\x00EHLO x\r\nNO\x00OP\r\n"+hello+
			"MAIL FROM:<a\x00b@example.org>\r\nMAIL FROM:<a@example.org>\x00\r\nMAIL FROM:<a@example.org>\r\n"+
			"RCPT TO:<b\x00@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nx\r\n.\r\n"+quit, false)
	write("nul-in-data", "NUL octets in data are stored as sent.\n"+oneMessage,
		message("Subject: nul\x00here\r\n\r\n\x00\x00\x00\r\nbinary \x00\x01\x02\x7f\xff"), false)

	// 8-bit without SMTPUTF8.
	write("8bit-commands", "8-bit octets in commands without SMTPUTF8.\n"+
		"expect: 250, 553 5.6.7, 500 5.5.2, 501 5.5.4, 501 5.5.4, 250 2.1.0, 553 5.6.7, 221 2.0.0, closed",
		"EHLO h\xc3\xb6st.example\r\nMAIL FROM:<j\xc3\xb6ran@example.org>\r\nM\xc3\x84IL FROM:<a@example.org>\r\n"+
			"MAIL FROM:<a@example.org> BODY=8B\xc3\x8fT\r\nMAIL FROM:<\xff\xfe@example.org> SMTPUTF8\r\n"+
			"MAIL FROM:<a@example.org>\r\nRCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>\r\n"+quit, false)

	// Recipient floods.
	var rc strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&rc, "RCPT TO:<user%d@example.com>\r\n", i)
	}
	write("many-rcpts", "5,000 pipelined RCPTs: 100 accepted, the rest 452 4.5.3, and the message goes to the first 100.\n"+
		"expect: 250, 250 2.1.0, 250 2.1.5 x100, 452 4.5.3 x4900, 354, 250 2.0.0, 221 2.0.0, closed\nmessages: 1",
		hello+"MAIL FROM:<a@example.org>\r\n"+rc.String()+"DATA\r\nSubject: many\r\n\r\nx\r\n.\r\n"+quit, true)
	write("bad-rcpts", "Bad RCPTs in a row: 421 4.7.0 after MaxBadCommands (10).\nexpect: 250, 250 2.1.0, 501 5.5.4 x10, 421 4.7.0, closed",
		hello+"MAIL FROM:<a@example.org>\r\n"+strings.Repeat("RCPT TO:<not-an-address>\r\n", 10), false)
	write("noop-flood", "10,000 pipelined NOOPs: 100 answered in order, then 421 4.7.0 (commands without mail, as Postfix's smtpd_junk_command_limit).\nexpect: 250 2.0.0 x100, 421 4.7.0, closed",
		strings.Repeat("NOOP\r\n", 10000)+quit, true)
	write("empty-lines", "Empty lines are unknown commands: 421 after 10.\nexpect: 500 5.5.2 x10, 421 4.7.0, closed", strings.Repeat("\r\n", 50), false)

	// Pipelining abuse around DATA.
	write("pipelined-garbage-after-data", "Garbage pipelined behind DATA is data; garbage after the end gets 500s.\n"+
		"expect: "+envReplies+", 250 2.0.0, 500 5.5.2 x5, 221 2.0.0, closed\nmessages: 1",
		envelope+"\x00\x01garbage\r\nRSET\r\nQUIT\r\n.\r\n\x00\x01\x02\r\n!!!!\r\n12345\r\nGARBAGEVERBFARTOOLONG\r\n\xff\xfe\r\n"+quit, false)
	write("data-then-eof", "The client vanishes mid-DATA: nothing is accepted.\nexpect: "+envReplies+", closed\nmessages: 0",
		envelope+"Subject: cut\r\n\r\nhalf a mess", false)
	write("starttls-unavailable", "STARTTLS without a certificate.\nexpect: 250, 502 5.5.1, 221 2.0.0, closed", hello+"STARTTLS\r\n"+quit, false)

	// MIME abuse: the acceptor stores it as it is; parse has the caps.
	var deep strings.Builder
	deep.WriteString("Subject: deep\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n")
	for i := range 5000 {
		fmt.Fprintf(&deep, "--b%d\r\nContent-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n", i, i+1)
	}
	deep.WriteString("--b5000\r\nContent-Type: text/plain\r\n\r\ncore\r\n")
	for i := 5000; i >= 0; i-- {
		fmt.Fprintf(&deep, "--b%d--\r\n", i)
	}
	write("mime-nesting-5000", "5,000 nested multiparts.\n"+oneMessage, message(deep.String()), true)
	var parts strings.Builder
	parts.WriteString("Subject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"p\"\r\n\r\n")
	for i := range 10000 {
		fmt.Fprintf(&parts, "--p\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"f%d.txt\"\r\n\r\n%d\r\n", i, i)
	}
	parts.WriteString("--p--\r\n")
	write("mime-10000-parts", "10,000 MIME parts.\n"+oneMessage, message(parts.String()), true)
	write("broken-base64", "Broken base64 bodies.\n"+oneMessage, message(
		"Subject: b64\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n"+
			"--x\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG8gd29ybGQ=garbage!!@@##\r\n====\r\nS\r\n"+
			"--x\r\nContent-Transfer-Encoding: base64\r\nContent-Type: application/octet-stream\r\n\r\n"+strings.Repeat("A", 10001)+"\r\n"+
			"--x\r\nContent-Transfer-Encoding: base64\r\n\r\n\x00\xff\xfe\r\n--x"), false)
	var ew strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&ew, " =?UTF-8?B?%s?=", "w7bDpMO8")
		if i%3 == 0 {
			ew.WriteString("\r\n")
		}
	}
	write("encoded-word-abuse", "Encoded words: malformed, unknown charsets, NULs, thousands of them.\n"+oneMessage, message(
		"Subject: =?UTF-8?B?!!!notbase64?= =?x-unknown?Q?abc?= =?UTF-8?Q?=00=0D=0ABcc:_evil@example.com?=\r\n"+
			"From: =?UTF-8?B?PGV2aWxAZXhhbXBsZS5jb20+?= <a@example.org>\r\n"+
			"To: =?=?UTF-8?Q?nested?=?= <b@example.com>\r\n"+
			"X-Many:"+ew.String()+"\r\n"+
			"X-Unterminated: =?UTF-8?B?w7bDpMO8\r\n\r\nbody"), false)
	write("path-traversal-filename", "Attachment names that try to leave a directory (inbound only stores them).\n"+oneMessage, message(
		"Subject: files\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n"+
			"--x\r\nContent-Disposition: attachment; filename=\"../../etc/passwd\"\r\n\r\nroot:x:0:0\r\n"+
			"--x\r\nContent-Disposition: attachment; filename*=UTF-8''..%2F..%2Fetc%2Fshadow\r\n\r\nx\r\n"+
			"--x\r\nContent-Type: application/octet-stream; name=\"/etc/passwd\"\r\n\r\nx\r\n"+
			"--x\r\nContent-Disposition: attachment; filename=\"C:\\\\Windows\\\\System32\\\\evil.dll\"\r\n\r\nx\r\n"+
			"--x\r\nContent-Disposition: attachment; filename=\"a\x00.txt\"\r\n\r\nx\r\n--x--"), false)

	// Other protocols on the SMTP port.
	write("tls-clienthello", "A TLS ClientHello on the plaintext port (implicit-TLS client or scanner).\nexpect: 221 2.7.0, closed",
		clientHello(), false)
	write("http-get", "An HTTP request.\nexpect: 221 2.7.0, closed", "GET / HTTP/1.1\r\nHost: mx.example\r\nUser-Agent: curl/8\r\n\r\n", false)
	write("http-post-cross-protocol", "A cross-protocol POST whose body holds SMTP commands: none may run.\nexpect: 221 2.7.0, closed",
		"POST /smtp HTTP/1.1\r\nHost: mx.example\r\nContent-Length: 60\r\n\r\n"+hello+"MAIL FROM:<a@example.org>\r\n", false)
}

// clientHello returns the first flight of a real crypto/tls client.
func clientHello() string {
	c, s := net.Pipe()
	go func() {
		_ = tls.Client(c, &tls.Config{ServerName: "mx.example", InsecureSkipVerify: true}).Handshake()
	}()
	buf := make([]byte, 64<<10)
	n, err := s.Read(buf)
	if err != nil {
		log.Fatal(err)
	}
	c.Close()
	if buf[0] != 0x16 {
		log.Fatalf("not a handshake record: %x", buf[:8])
	}
	return string(buf[:n])
}
