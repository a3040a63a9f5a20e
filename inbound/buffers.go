package inbound

import (
	"bufio"
	"sync"
)

// Session buffers. Most sessions spend most of their life idle between
// commands, and a command line is at most a few hundred octets, so a
// session reads commands through a small buffer and borrows a large one
// from a pool only while it streams message data (DATA or BDAT), where the
// large buffer is what lets Message.Body hand out big slices and saves
// system calls. 1,000 idle sessions cost about 8 MB instead of 43 MB
// (BenchmarkIdleSessions).
const (
	// cmdReadBufferSize holds a whole command line (maxMailLine) and a
	// whole PROXY v1 header (maxV1Header) or v2 fixed part.
	cmdReadBufferSize = 1 << 10
	// dataReadBufferSize is the buffer borrowed for message data.
	dataReadBufferSize = readBufferSize
)

var dataReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, dataReadBufferSize) }}

// growReader switches s.r to a pooled large buffer for message data. What
// the small buffer held (commands or data pipelined behind DATA/BDAT) is
// read first, through s.pending.
func (s *session) growReader() {
	if s.r.Size() >= dataReadBufferSize {
		return
	}
	if n := s.r.Buffered(); n > 0 {
		b, _ := s.r.Peek(n)
		s.pending = append([]byte(nil), b...)
	}
	s.small = s.r
	big := dataReaders.Get().(*bufio.Reader)
	big.Reset(sessionReader{s})
	s.r = big
}

// shrinkReader gives the large buffer back once the data is read, unless
// more than a small buffer's worth of input is waiting in it (pipelined
// commands): then it is kept until the session ends.
func (s *session) shrinkReader() {
	if s.small == nil || s.r.Buffered() > cmdReadBufferSize {
		return
	}
	if n := s.r.Buffered(); n > 0 {
		b, _ := s.r.Peek(n)
		s.pending = append(s.pending[:0:0], b...)
	}
	big := s.r
	big.Reset(nil)
	dataReaders.Put(big)
	s.r, s.small = s.small, nil
	s.r.Reset(sessionReader{s})
}

// readPending hands out what growReader or shrinkReader carried over from
// the previous buffer; it is read before the connection.
func (s *session) readPending(p []byte) int {
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	if len(s.pending) == 0 {
		s.pending = nil
	}
	return n
}
