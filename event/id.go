package event

import (
	"crypto/rand"
	"encoding/binary"
	"strings"
	"time"
)

// crockford is the Crockford base32 alphabet: no I, L, O or U.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewID returns a new message id: 26 characters of Crockford base32 holding
// 48 bits of Unix milliseconds then 80 random bits (the ULID layout), so ids
// sort by time as strings and are safe in file names, object keys and URLs.
func NewID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails (Go 1.24+)
	return encode(b)
}

func encode(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	var out [26]byte
	// 128 bits as 26 base32 digits: the first digit carries the top 3 bits.
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// ValidID reports whether s has the shape of an id made by NewID. Use it
// before an id from outside (a command line, a URL) goes into a store key.
func ValidID(s string) bool {
	if len(s) != 26 || s[0] > '7' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U') {
			return false
		}
	}
	return true
}

// IDTime returns the time an id made by NewID carries, to the
// millisecond, or the zero time if id is not ValidID.
func IDTime(id string) time.Time {
	if !ValidID(id) {
		return time.Time{}
	}
	var ms int64
	for i := 0; i < 10; i++ { // 3 + 9×5 bits: the 48 of the time
		ms = ms<<5 | int64(strings.IndexByte(crockford, id[i]))
	}
	return time.UnixMilli(ms)
}
