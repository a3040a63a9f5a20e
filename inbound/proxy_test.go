package inbound

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

var loopbackProxy = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// v2Header builds a PROXY v2 header with go-proxyproto.
func v2Header(t testing.TB, cmd proxyproto.ProtocolVersionAndCommand, src, dst string) []byte {
	t.Helper()
	h := &proxyproto.Header{Version: 2, Command: cmd, TransportProtocol: proxyproto.UNSPEC}
	if src != "" {
		s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
		h.TransportProtocol = proxyproto.TCPv4
		if !s.Addr().Is4() {
			h.TransportProtocol = proxyproto.TCPv6
		}
		h.SourceAddr, h.DestinationAddr = net.TCPAddrFromAddrPort(s), net.TCPAddrFromAddrPort(d)
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// proxiedTransaction is one whole mail transaction after the banner.
var proxiedTransaction = []step{
	ehlo,
	{send: "MAIL FROM:<a@example.org>", code: 250, enh: "2.1.0"},
	{send: "RCPT TO:<b@example.com>", code: 250, enh: "2.1.5"},
	{send: "DATA", code: 354, enh: "2.0.0"},
	{send: "Subject: via proxy\r\n\r\nhi\r\n.", code: 250, enh: "2.0.0"},
	{send: "QUIT", code: 221, enh: "2.0.0"},
	{closed: true},
}

// dialWrite connects and writes each of parts, pausing between them so
// that they travel in separate TCP segments.
func dialWrite(t *testing.T, addr string, parts ...[]byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if c, ok := conn.(*net.TCPConn); ok {
		_ = c.SetNoDelay(true)
	}
	for i, p := range parts {
		if i > 0 {
			time.Sleep(30 * time.Millisecond)
		}
		if _, err := conn.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}

// expectSilentClose asserts that the server closes conn without writing
// anything, within limit.
func expectSilentClose(t *testing.T, conn net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(limit))
	b, err := io.ReadAll(conn)
	if len(b) > 0 {
		t.Fatalf("server wrote %q, want nothing", b)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", limit)
	}
	return time.Since(start)
}

func TestProxyProtocol(t *testing.T) {
	ts := startServer(t, Config{ProxyProtocol: loopbackProxy, ProxyHeaderTimeout: 300 * time.Millisecond}, nil)
	v1 := []byte("PROXY TCP4 203.0.113.7 192.0.2.1 40000 25\r\n")
	v2v6 := v2Header(t, proxyproto.PROXY, "[2001:db8::42]:51000", "[2001:db8::1]:25")
	tests := []struct {
		name   string
		parts  [][]byte
		client string // "" = the proxy itself (LOCAL)
	}{
		{"v1", [][]byte{v1}, "203.0.113.7:40000"},
		{"v1 TCP6", [][]byte{[]byte("PROXY TCP6 2001:db8::7 2001:db8::1 1234 25\r\n")}, "[2001:db8::7]:1234"},
		{"v1 split", [][]byte{v1[:3], v1[3:20], v1[20:]}, "203.0.113.7:40000"},
		{"v1 UNKNOWN", [][]byte{[]byte("PROXY UNKNOWN\r\n")}, ""},
		{"v2 IPv4", [][]byte{v2Header(t, proxyproto.PROXY, "198.51.100.9:2525", "192.0.2.1:25")}, "198.51.100.9:2525"},
		{"v2 IPv6", [][]byte{v2v6}, "[2001:db8::42]:51000"},
		{"v2 split", [][]byte{v2v6[:5], v2v6[5:14], v2v6[14:17], v2v6[17:]}, "[2001:db8::42]:51000"},
		{"v2 LOCAL", [][]byte{v2Header(t, proxyproto.LOCAL, "", "")}, ""},
		{"v2 IPv4-mapped source", [][]byte{v2Header(t, proxyproto.PROXY, "[::ffff:203.0.113.8]:7", "[2001:db8::1]:25")}, "203.0.113.8:7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(ts.acc.messages())
			conn := dialWrite(t, ts.addr, tc.parts...)
			playScript(t, conn, proxiedTransaction)
			msgs := ts.acc.messages()[before:]
			if len(msgs) != 1 {
				t.Fatalf("%d messages", len(msgs))
			}
			want := tc.client
			if want == "" {
				want = conn.LocalAddr().String()
			}
			env := msgs[0].msg.Envelope
			if env.RemoteAddr != want {
				t.Errorf("remote_addr %q, want %q", env.RemoteAddr, want)
			}
			ip := netip.MustParseAddrPort(want).Addr()
			lit := ip.String()
			if ip.Is6() {
				lit = "IPv6:" + lit
			}
			if !bytes.Contains(msgs[0].body, []byte("(unknown ["+lit+"])")) {
				t.Errorf("Received header lacks %s: %q", lit, msgs[0].body)
			}
			if tc.client != "" && !strings.Contains(ts.logs.String(), "remote_ip="+ip.String()+" proxy_ip=127.0.0.1") {
				t.Errorf("logs do not name the client and the proxy:\n%s", ts.logs.String())
			}
		})
	}

	t.Run("commands pipelined behind the header", func(t *testing.T) {
		conn := dialWrite(t, ts.addr, append(append([]byte(nil), v1...), "NOOP\r\nQUIT\r\n"...))
		playScript(t, conn, []step{{code: 250, enh: "2.0.0"}, {code: 221, enh: "2.0.0"}, {closed: true}})
	})

	bad := []struct {
		name  string
		parts [][]byte
	}{
		{"SMTP without header", [][]byte{[]byte("EHLO x\r\n")}},
		{"HTTP", [][]byte{[]byte("GET / HTTP/1.0\r\n\r\n")}},
		{"v1 bad address", [][]byte{[]byte("PROXY TCP4 999.0.0.1 192.0.2.1 1 25\r\n")}},
		{"v1 bad port", [][]byte{[]byte("PROXY TCP4 192.0.2.9 192.0.2.1 99999 25\r\n")}},
		{"v1 family mismatch", [][]byte{[]byte("PROXY TCP4 2001:db8::1 192.0.2.1 1 25\r\n")}},
		{"v1 bare LF", [][]byte{[]byte("PROXY TCP4 192.0.2.9 192.0.2.1 1 25\n")}},
		{"v1 too long", [][]byte{[]byte("PROXY TCP4 " + strings.Repeat("1", 200) + "\r\n")}},
		{"v1 lower case", [][]byte{[]byte("proxy TCP4 192.0.2.9 192.0.2.1 1 25\r\n")}},
		{"v2 bad version", [][]byte{append(append([]byte(nil), proxyproto.SIGV2...), 0x31, 0x11, 0, 12)}},
		{"v2 short length", [][]byte{append(append([]byte(nil), proxyproto.SIGV2...), 0x21, 0x11, 0, 4, 1, 2, 3, 4)}},
		{"v2 UDP", [][]byte{append(append([]byte(nil), proxyproto.SIGV2...), 0x21, 0x12, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2)}},
		{"v2 unix", [][]byte{append(append(append([]byte(nil), proxyproto.SIGV2...), 0x21, 0x31, 0, 216), make([]byte, 216)...)}},
		{"binary garbage", [][]byte{{0x0d, 0x0a, 0x0d, 0x0a, 0, 0x0d, 0x0a, 'Q', 'U', 'I', 'X', 0, 0, 0, 0, 0}}},
		{"TLS ClientHello", [][]byte{{0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00}}},
	}
	for _, tc := range bad {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			conn := dialWrite(t, ts.addr, tc.parts...)
			// Refused at once, or after the header timeout when the
			// input could still become a header.
			expectSilentClose(t, conn, 3*time.Second)
		})
	}

	t.Run("no header: closed without banner after the timeout", func(t *testing.T) {
		conn := dialWrite(t, ts.addr)
		if d := expectSilentClose(t, conn, 3*time.Second); d < 200*time.Millisecond {
			t.Fatalf("closed after %v, before the header timeout", d)
		}
	})
	t.Run("header dripped too slowly", func(t *testing.T) {
		conn := dialWrite(t, ts.addr)
		go func() {
			for _, c := range v1 {
				if _, err := conn.Write([]byte{c}); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		expectSilentClose(t, conn, 3*time.Second)
	})
	t.Run("no header at all within the timeout, partial signature", func(t *testing.T) {
		conn := dialWrite(t, ts.addr, []byte("PROX"))
		expectSilentClose(t, conn, 3*time.Second)
	})
	waitFor(t, "sessions to end", func() bool {
		ts.srv.mu.Lock()
		defer ts.srv.mu.Unlock()
		return len(ts.srv.sessions) == 0 && len(ts.srv.perIP) == 0
	})
}

func TestProxyProtocolUntrusted(t *testing.T) {
	ts := startServer(t, Config{ProxyProtocol: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}, nil)
	for _, first := range [][]byte{
		[]byte("PROXY TCP4 203.0.113.7 192.0.2.1 40000 25\r\n"), // a spoofed header
		[]byte("EHLO x\r\n"),
		nil,
	} {
		conn := dialWrite(t, ts.addr, first)
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		r := bufio.NewReader(conn)
		rep, err := readReply(r)
		if err != nil || rep.code != 421 || rep.enh != "4.7.0" {
			t.Fatalf("got %v %v, want 421 4.7.0", rep, err)
		}
		if _, err := r.ReadByte(); err == nil {
			t.Fatal("connection not closed")
		}
	}
	if n := len(ts.acc.messages()); n != 0 {
		t.Fatalf("%d messages", n)
	}
}

// TestProxyProtocolOff checks that a PROXY header is just a bad command
// when the feature is off: nobody can claim another address.
func TestProxyProtocolOff(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	runScript(t, ts.addr, []step{
		{send: "PROXY TCP4 203.0.113.7 192.0.2.1 40000 25", code: 500, enh: "5.5.2"},
		{send: "NOOP", code: 250, enh: "2.0.0"},
	})
}

func TestProxyProtocolPerIPCap(t *testing.T) {
	ts := startServer(t, Config{ProxyProtocol: loopbackProxy, MaxSessionsPerIP: 1}, nil)
	open := func(client string) (net.Conn, *bufio.Reader, smtpReply) {
		t.Helper()
		ap := netip.MustParseAddrPort(client)
		conn := dialWrite(t, ts.addr, []byte("PROXY TCP4 "+ap.Addr().String()+" 192.0.2.1 "+strconv.Itoa(int(ap.Port()))+" 25\r\n"))
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(conn)
		rep, err := readReply(r)
		if err != nil {
			t.Fatal(err)
		}
		return conn, r, rep
	}
	// Two clients behind one proxy: the proxy's own address is not capped.
	_, _, a := open("198.51.100.1:1000")
	_, _, b := open("198.51.100.2:1000")
	if a.code != 220 || b.code != 220 {
		t.Fatalf("banners %v %v", a, b)
	}
	// A second session of the first client is over its cap.
	c, r, rep := open("198.51.100.1:1001")
	if rep.code != 421 || rep.enh != "4.7.0" {
		t.Fatalf("got %v, want 421 4.7.0", rep)
	}
	if _, err := r.ReadByte(); err == nil {
		t.Fatal("connection not closed")
	}
	c.Close()
	ts.srv.mu.Lock()
	defer ts.srv.mu.Unlock()
	if ts.srv.perIP[netip.MustParseAddr("198.51.100.1")] != 1 || ts.srv.perIP[netip.MustParseAddr("198.51.100.2")] != 1 {
		t.Fatalf("perIP %v", ts.srv.perIP)
	}
}

// headerEnd returns the length of the PROXY header at the start of in,
// computed independently of the parser: the v1 line up to its LF, or the
// v2 fixed part plus its length field.
func headerEnd(in []byte) int {
	if bytes.HasPrefix(in, proxyproto.SIGV2) {
		return v2HeaderFixed + int(binary.BigEndian.Uint16(in[14:16]))
	}
	return bytes.IndexByte(in, '\n') + 1
}

// headerSource decodes the client address from a header that the parser
// accepted, independently of it.
func headerSource(t *testing.T, in []byte, proxy netip.AddrPort) netip.AddrPort {
	t.Helper()
	if bytes.HasPrefix(in, proxyproto.SIGV2) {
		if in[12]&0x0f == 0 { // LOCAL
			return proxy
		}
		switch in[13] >> 4 {
		case 1:
			ip := netip.AddrFrom4([4]byte(in[16:20]))
			return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(in[24:26]))
		case 2:
			ip := netip.AddrFrom16([16]byte(in[16:32])).Unmap()
			return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(in[48:50]))
		}
		t.Fatalf("accepted v2 family %#x", in[13])
	}
	f := strings.Split(strings.TrimSuffix(string(in[:headerEnd(in)]), "\r\n"), " ")
	if f[1] == "UNKNOWN" {
		return proxy
	}
	ip, err := netip.ParseAddr(f[2])
	port, err2 := strconv.ParseUint(f[4], 10, 16)
	if err != nil || err2 != nil {
		t.Fatalf("accepted v1 %q: %v %v", in, err, err2)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port))
}

// FuzzProxyHeader feeds arbitrary input, split into arbitrary reads, to
// the header reader the session uses. It must never panic; when it
// accepts, the address must be the one the header names (or the proxy's
// for LOCAL) and the reader must hold exactly what followed the header, so
// the session starts with the right peer and the right first octet.
func FuzzProxyHeader(f *testing.F) {
	seeds := [][]byte{
		[]byte("PROXY TCP4 203.0.113.7 192.0.2.1 40000 25\r\nEHLO x\r\n"),
		[]byte("PROXY TCP6 2001:db8::7 2001:db8::1 1234 25\r\n"),
		[]byte("PROXY UNKNOWN\r\n"),
		[]byte("PROXY UNKNOWN ffff:f::f ffff:f::f 65535 65535\r\n"),
		[]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
		[]byte("EHLO x\r\n"),
		v2Header(f, proxyproto.PROXY, "198.51.100.9:2525", "192.0.2.1:25"),
		append(v2Header(f, proxyproto.PROXY, "[2001:db8::42]:51000", "[2001:db8::1]:25"), "QUIT\r\n"...),
		v2Header(f, proxyproto.LOCAL, "", ""),
		append(append([]byte(nil), proxyproto.SIGV2...), 0x21, 0x11, 0, 15, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2, 4, 0, 0),
	}
	for i, s := range seeds {
		f.Add(s, []byte{byte(i), 7, 1})
	}
	proxy := netip.MustParseAddrPort("10.0.0.1:34567")
	f.Fuzz(func(t *testing.T, in, sizes []byte) {
		br := bufio.NewReaderSize(&chunkReader{data: in, sizes: sizes}, 256)
		got, err := readProxyHeader(br, proxy)
		if err != nil {
			return
		}
		if !got.IsValid() || got.Addr().Is4In6() {
			t.Fatalf("%q: accepted with address %v", in, got)
		}
		if want := headerSource(t, in, proxy); got != want {
			t.Fatalf("%q: address %v, want %v", in, got, want)
		}
		rest, _ := io.ReadAll(br)
		if !bytes.Equal(rest, in[headerEnd(in):]) {
			t.Fatalf("%q: after the header %q, want %q", in, rest, in[headerEnd(in):])
		}
	})
}

// TestProxyProtocolShutdown checks that Shutdown does not wait for a
// session still waiting for its PROXY header.
func TestProxyProtocolShutdown(t *testing.T) {
	ts := startServer(t, Config{ProxyProtocol: loopbackProxy, ProxyHeaderTimeout: time.Minute}, nil)
	conn := dialWrite(t, ts.addr)
	waitFor(t, "session", func() bool {
		ts.srv.mu.Lock()
		defer ts.srv.mu.Unlock()
		return len(ts.srv.sessions) == 1
	})
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	expectSilentClose(t, conn, time.Second)
}
