package inbound

import "testing"

// TestSmuggling sends, inside one DATA, an end-of-data look-alike followed
// by a second transaction, and checks that exactly one message arrives
// (normalize) or none (reject), and that the smuggled commands are never
// run: if they were, their replies would come before the 221 to QUIT.
func TestSmuggling(t *testing.T) {
	variants := []struct{ name, sep string }{
		{`\n.\n`, "\n.\n"},
		{`\r\n.\n`, "\r\n.\n"},
		{`\n.\r\n`, "\n.\r\n"},
		{`\r.\r`, "\r.\r"},
		{`\r\n.\r`, "\r\n.\r"},
		{`\r.\r\n`, "\r.\r\n"},
		{`\n..\n`, "\n..\n"},
		{`\r\n.\r\r\n`, "\r\n.\r\r\n"},
	}
	const smuggled = "MAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nsmuggled body\r\n"
	for _, mode := range []string{BareNewlineNormalize, BareNewlineReject} {
		ts := startServer(t, Config{BareNewline: mode}, nil)
		for _, v := range variants {
			t.Run(mode+"/"+v.name, func(t *testing.T) {
				before := len(ts.acc.messages())
				final := step{code: 250, enh: "2.0.0", text: "queued as"}
				if mode == BareNewlineReject {
					final = step{code: 550, enh: "5.5.2", text: "bare <LF>/<CR> not allowed"}
				}
				final.send, final.raw = "Subject: first\r\n\r\nfirst"+v.sep+smuggled+".\r\n", true
				runScript(t, ts.addr, []step{
					ehlo,
					{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
					{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
					{send: "DATA", code: 354, enh: "2.0.0"},
					final,
					{send: "QUIT", code: 221, enh: "2.0.0"},
					{closed: true},
				})
				msgs := ts.acc.messages()[before:]
				if mode == BareNewlineReject {
					if len(msgs) != 0 {
						t.Fatalf("%d messages accepted in reject mode", len(msgs))
					}
					return
				}
				if len(msgs) != 1 {
					t.Fatalf("%d messages, want 1", len(msgs))
				}
				if rc := msgs[0].msg.Envelope.RcptTo; len(rc) != 1 || rc[0] != "b@example.com" {
					t.Fatalf("rcpt %v", rc)
				}
				// Each bare newline became CRLF; the lone "." line was kept
				// ("..", having more than the dot, was unstuffed to ".").
				lines := "\r\n.\r\n"
				if v.sep == "\r\n.\r\r\n" {
					lines = "\r\n.\r\n\r\n"
				}
				want := "Subject: first\r\n\r\nfirst" + lines + smuggled
				if got := string(dataOf(t, msgs[0])); got != want {
					t.Fatalf("data\n%q\nwant\n%q", got, want)
				}
			})
		}
	}
}
