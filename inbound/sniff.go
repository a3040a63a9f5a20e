package inbound

import "time"

// tlsHandshakeRecord is the first octet of a TLS record carrying a
// handshake message (RFC 8446 §5.1, ContentType handshake(22); the same in
// TLS 1.0-1.2 and in SSL 3.0).
const tlsHandshakeRecord = 0x16

// firstOctet looks at the client's first octet before the first command
// is read. A TLS ClientHello on this plaintext port (a client configured
// for implicit TLS, RFC 8314, or a scanner) holds no line end the client
// would ever complete: it waits for a ServerHello while we would wait for
// a CRLF until the command timeout. Such a session is answered and closed
// at once, like an HTTP request (see dispatch). It returns false when the
// session must end.
func (s *session) firstOctet() bool {
	s.timeout = s.srv.cfg.CommandTimeout
	s.idleSince.Store(time.Now().UnixNano())
	b, err := s.r.Peek(1)
	s.idleSince.Store(0)
	if err != nil {
		// Peek hands the read error over (and clears it in the reader),
		// so it is handled here, as readLine would.
		return s.readFailed(err)
	}
	if b[0] == tlsHandshakeRecord {
		s.log.Debug("smtp: TLS handshake on plaintext port")
		return s.closeWith(replyTLSRefused)
	}
	return true
}
