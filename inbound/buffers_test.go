package inbound

import (
	"fmt"
	"strings"
	"testing"
)

// TestBufferSwitchPipelined drives the switch between the command buffer
// and the pooled data buffer with input that straddles it: commands and
// data pipelined in single writes, DATA and BDAT, less and more than a
// command buffer's worth of commands behind the end of the data.
func TestBufferSwitchPipelined(t *testing.T) {
	ts := startServer(t, Config{MaxBadCommands: 1000}, nil)
	body := func(i int) string {
		return fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat(fmt.Sprint(i), 40000))
	}
	var in strings.Builder
	var want []step
	in.WriteString("EHLO x\r\n")
	want = append(want, step{code: 250, enh: "-"})
	for i := range 6 {
		in.WriteString("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n")
		want = append(want, step{code: 250, enh: "2.1.0"}, step{code: 250, enh: "2.1.5"})
		if i%2 == 0 {
			in.WriteString("DATA\r\n" + body(i) + ".\r\n")
			want = append(want, step{code: 354, enh: "2.0.0"}, step{code: 250, enh: "2.0.0"})
		} else {
			b := body(i)
			fmt.Fprintf(&in, "BDAT 10\r\n%sBDAT %d LAST\r\n%s", b[:10], len(b)-10, b[10:])
			want = append(want, step{code: 250, enh: "2.0.0"}, step{code: 250, enh: "2.0.0"})
		}
		// Behind the data: a few NOOPs, or more than 1 KiB of them (long
		// ones: a session may send 100 commands without mail).
		n, noop := 3, "NOOP\r\n"
		if i%3 == 1 {
			n, noop = 60, "NOOP "+strings.Repeat("x", 30)+"\r\n"
		}
		for range n {
			in.WriteString(noop)
			want = append(want, step{code: 250, enh: "2.0.0"})
		}
	}
	in.WriteString("QUIT\r\n")
	want = append(want, step{code: 221, enh: "2.0.0"}, step{closed: true})
	want[0].send, want[0].raw = in.String(), true
	runScript(t, ts.addr, want)
	msgs := ts.acc.messages()
	if len(msgs) != 6 {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, m := range msgs {
		if got := string(dataOf(t, m)); got != body(i) {
			t.Fatalf("message %d: %d octets, want %d", i, len(got), len(body(i)))
		}
	}
}
