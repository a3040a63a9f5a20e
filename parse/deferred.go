package parse

import (
	"golang.org/x/text/encoding"
	"golang.org/x/text/transform"
)

// deferAbove is the UTF-8 size above which the text or HTML body of a
// single-part message in an 8-bit or multi-byte charset is not converted
// by Parse but as the event is written (event.Data.TextBody): converted
// whole, 24 MB of windows-1251 text is 43 MB of UTF-8, held beside the
// raw message it came from.
const deferAbove = 4 << 20

// recoded is such a body: the part's body in the raw message, transfer
// encoded, and its charset. It only reads what it holds, so any number
// of renders may read it at once.
type recoded struct {
	cte   string // lower case, as transferPieces takes it
	body  []byte
	table *byteTable        // an 8-bit charset, or
	enc   encoding.Encoding // a multi-byte one
	size  int               // the length in UTF-8
}

// Pieces implements event.Body.
func (r *recoded) Pieces(f func([]byte)) {
	if r.table != nil {
		out := make([]byte, 0, 64<<10)
		step := cap(out) / 4 // a byte converts to at most 3
		transferPieces(r.cte, r.body, func(piece []byte) {
			for len(piece) > 0 {
				n := min(len(piece), step)
				f(r.table.append(out[:0], piece[:n]))
				piece = piece[n:]
			}
		})
		return
	}
	// A decoder writes whole runes only.
	w := transform.NewWriter(pieceWriter(f), r.enc.NewDecoder())
	transferPieces(r.cte, r.body, func(piece []byte) { _, _ = w.Write(piece) })
	_ = w.Close()
}

// pieceWriter hands what is written to it to a Pieces callback.
type pieceWriter func([]byte)

func (f pieceWriter) Write(p []byte) (int, error) {
	f(p)
	return len(p), nil
}
