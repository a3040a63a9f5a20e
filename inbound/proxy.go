package inbound

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
)

// PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2).
//
// When Config.ProxyProtocol lists networks, mailhook sits behind a load
// balancer that speaks the PROXY protocol, and:
//
//   - a connection from an address outside those networks is refused in
//     the accept loop: it gets "421 4.7.0" at once and is closed, reading
//     nothing (a direct SMTP client sees a clean temporary failure and
//     retries, through the proxy if the MX records say so);
//   - a connection from a trusted proxy MUST start with a v1 or v2 header.
//     The header is read in the session goroutine, never in the accept
//     loop, within Config.ProxyHeaderTimeout for the whole header. A missing
//     (the peer speaks SMTP or says nothing), malformed, split-too-slowly or
//     non-TCP header closes the connection without a single octet written:
//     the peer is not an SMTP client we could answer, and a banner would
//     only tell a broken proxy that all is well.
//   - a PROXY command (v2) or TCP4/TCP6 line (v1) makes the header's source
//     address the client: it is the per-IP cap key (MaxSessionsPerIP),
//     what the logs show as remote_ip (the proxy as proxy_ip), the address
//     in our Received header and Envelope.RemoteAddr.
//   - a LOCAL command (v2) or "PROXY UNKNOWN" (v1) is the proxy talking for
//     itself (health checks): the session goes on with the proxy's own
//     address, as the spec asks (proxy-protocol.txt §2.2).
//
// The bytes after the header are read from the same bufio.Reader by the
// session, so nothing the client pipelined behind the header is lost.

// DefaultProxyHeaderTimeout is the default Config.ProxyHeaderTimeout.
// proxy-protocol.txt §2 asks senders to send the header at once, in the
// first segment, so a few seconds are plenty.
const DefaultProxyHeaderTimeout = 5 * time.Second

const (
	// maxV1Header is the longest v1 line (proxy-protocol.txt §2.1).
	maxV1Header = 107
	// v2HeaderFixed is the fixed part of a v2 header: signature, version
	// and command, family and protocol, length (proxy-protocol.txt §2.2).
	v2HeaderFixed = 16
)

var (
	errProxyNotStream = errors.New("proxy header: not a TCP/IP connection")
	errProxyBadAddr   = errors.New("proxy header: bad source address")
)

// proxyOn reports whether PROXY protocol is configured.
func (s *Server) proxyOn() bool { return len(s.cfg.ProxyProtocol) > 0 }

// trustedProxy reports whether ip is in one of Config.ProxyProtocol's
// networks.
func (s *Server) trustedProxy(ip netip.Addr) bool {
	for _, p := range s.cfg.ProxyProtocol {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// refuseUntrusted refuses conn when PROXY protocol is on and the peer is
// not a trusted proxy; it reports whether it did.
func (s *Server) refuseUntrusted(conn net.Conn, ip netip.Addr) bool {
	if !s.proxyOn() || s.trustedProxy(ip) {
		return false
	}
	s.log.Debug("smtp: connection refused: not a trusted proxy", "remote_ip", ip.String())
	refuse(conn, replyProxyUntrusted)
	return true
}

// rekeyIP moves sess from the proxy's address to the client's in the
// per-IP count; it reports false, changing nothing, when the client is
// already at MaxSessionsPerIP.
func (s *Server) rekeyIP(sess *session, ip netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ip == sess.ip {
		return true
	}
	if s.overIPCap(ip) {
		return false
	}
	if s.perIP[sess.ip]--; s.perIP[sess.ip] <= 0 {
		delete(s.perIP, sess.ip)
	}
	s.perIP[ip]++
	sess.ip = ip
	return true
}

// proxyHandshake reads the PROXY header a trusted proxy sends first and
// makes the client it names the session's peer. It returns false when the
// session must end; it has written nothing then, except the 421 of the
// per-IP cap (which the client behind the proxy does see).
func (s *session) proxyHandshake() bool {
	proxy := s.remoteAddrPort()
	// The whole header must arrive within ProxyHeaderTimeout: the session
	// deadline stands in for it while the header is read.
	deadline, timeout := s.deadline, s.timeout
	s.timeout = s.srv.cfg.ProxyHeaderTimeout
	if d := time.Now().Add(s.timeout); d.Before(s.deadline) {
		s.deadline = d
	}
	client, err := readProxyHeader(s.r, proxy)
	s.deadline, s.timeout = deadline, timeout
	switch {
	case err != nil && (errors.Is(err, errKicked) || s.kicked.Load()):
		s.log.Debug("smtp: shutdown while waiting for the PROXY header")
		return false
	case err != nil:
		// A trusted proxy that sends no valid header is misconfigured:
		// worth a warning, not an error of ours.
		s.log.Warn("smtp: bad or missing PROXY protocol header, closing", "proxy_ip", proxy.Addr().String(), "err", err)
		return false
	}
	if !s.srv.rekeyIP(s, client.Addr()) {
		s.log.Debug("smtp: connection refused: over cap", "remote_ip", client.Addr().String(), "proxy_ip", proxy.Addr().String())
		s.closeWith(replyTooManySessions)
		return false
	}
	s.remoteAddr = client.String()
	s.log = s.srv.log.With("remote_ip", client.Addr().String(), "proxy_ip", proxy.Addr().String())
	return true
}

// remoteAddrPort is the connection's peer (the proxy, when proxied).
func (s *session) remoteAddrPort() netip.AddrPort {
	if ta, ok := s.rawConn.RemoteAddr().(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPortFrom(s.ip, 0)
}

// readProxyHeader reads one PROXY protocol header (v1 or v2) from br and
// returns the client it names, or proxy itself for LOCAL (v2) and UNKNOWN
// (v1). On success br holds exactly what followed the header. Read errors
// (the caller's deadlines) are returned as they are.
//
// go-proxyproto parses the header. Its v1 parser refuses a line that does
// not arrive in one read (a slowloris guard), which would break a header
// split across TCP segments, so the line is first gathered here, bounded
// by maxV1Header and by the caller's deadline; so is the fixed part of a
// v2 header, whose announced length the parser then reads with blocking
// reads. Input that stops matching a signature fails at once.
func readProxyHeader(br *bufio.Reader, proxy netip.AddrPort) (netip.AddrPort, error) {
	first, err := br.Peek(1)
	if err != nil {
		return netip.AddrPort{}, err
	}
	switch first[0] {
	case proxyproto.SIGV1[0]:
		err = gather(br, []byte("PROXY "), func(buf []byte) bool {
			// Complete, or too long: the parser says which.
			return bytes.IndexByte(buf, '\n') >= 0 || len(buf) >= maxV1Header
		})
	case proxyproto.SIGV2[0]:
		err = gather(br, proxyproto.SIGV2, func(buf []byte) bool { return len(buf) >= v2HeaderFixed })
	default:
		err = proxyproto.ErrNoProxyProtocol
	}
	if err != nil {
		return netip.AddrPort{}, err
	}
	h, err := proxyproto.Read(br)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return proxyClient(h, proxy)
}

// gather waits until br holds enough of a header for done to say so,
// failing as soon as what arrived does not start with sig.
func gather(br *bufio.Reader, sig []byte, done func([]byte) bool) error {
	for {
		buf, _ := br.Peek(br.Buffered())
		if k := min(len(buf), len(sig)); !bytes.Equal(buf[:k], sig[:k]) {
			return proxyproto.ErrNoProxyProtocol
		}
		if done(buf) {
			return nil
		}
		// Block until at least one more octet is there.
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return err
		}
	}
}

// proxyClient returns the client named by h, or proxy for a LOCAL header.
func proxyClient(h *proxyproto.Header, proxy netip.AddrPort) (netip.AddrPort, error) {
	if h.Command.IsLocal() {
		return proxy, nil
	}
	if !h.Command.IsProxy() || !h.TransportProtocol.IsStream() ||
		!h.TransportProtocol.IsIPv4() && !h.TransportProtocol.IsIPv6() {
		return netip.AddrPort{}, fmt.Errorf("%w (%#x)", errProxyNotStream, byte(h.TransportProtocol))
	}
	src, ok := h.SourceAddr.(*net.TCPAddr)
	if !ok || src == nil {
		return netip.AddrPort{}, errProxyBadAddr
	}
	ip, ok := netip.AddrFromSlice(src.IP)
	if !ok || src.Port < 0 || src.Port > 65535 {
		return netip.AddrPort{}, errProxyBadAddr
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(src.Port)), nil
}
