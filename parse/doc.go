// Package parse turns one raw RFC 5322 message into the message fields of
// the webhook event (event.Data): identifiers, subject, date, decoded
// addresses, every header field in order, the text and HTML bodies in UTF-8,
// and every attachment and inline part with its decoded bytes.
//
// What it owns:
//
//   - Header fields, split and unfolded here (RFC 5322 §2.2.3) so that order
//     and spelling survive, with RFC 2047 encoded words decoded in any
//     charset golang.org/x/text knows. Raw 8-bit header bytes that are not
//     UTF-8 (pre-RFC 6532 mailers) are read as windows-1252, with a warning.
//   - The multipart structure (RFC 2046 §5.1), located here in one linear
//     pass, so that depth and part count are capped exactly and the work
//     stays linear in the message size. enmime, left to itself, stacks one
//     boundary reader per nesting level and copies every byte through all
//     of them one at a time: 12 s for 350 KB nested 5,000 deep, and about
//     15 ms per MB per level on ordinary messages.
//   - Decoding each single part, delegated to github.com/jhillyerd/enmime/v2,
//     which never sees a multipart body: transfer encodings, charset
//     conversion of text/* parts (its detection overrides a declared charset
//     only on long texts with high confidence), the choice of text and HTML
//     bodies, and HTML-to-text down-conversion when a message has HTML only.
//     enmime gets a rebuilt header per part holding only the fields it
//     reads, so nothing else in a header can cost it time.
//   - Bounding the work on hostile input: nesting depth and part count
//     (Options), plus fixed caps where a linear but slow step meets a
//     25 MB message — header fields listed, address-list bytes parsed, MIME
//     header bytes handed to enmime, HTML converted to text, and base64
//     garbage (cleaned here rather than by enmime, which keeps an error per
//     bad byte). Every cap that bites leaves a warning.
//
// What it never does: it never fails on malformed input (broken MIME, bad
// base64, unknown charsets, truncation all come back as Data.Warnings, with
// whatever could be extracted; only an error reading the input is
// returned), it never sanitises content beyond decoding (filenames keep
// their characters; only directory parts are dropped so a filename is never
// a path), it never fills the fields the caller owns (ID, ReceivedAt,
// Envelope, Raw), and it does no I/O other than reading the message given.
package parse
