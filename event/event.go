package event

import "time"

// Type is the value of Event.Type for a received message.
const Type = "email.received"

// SchemaVersion is the version of the event schema carried in every event.
// Receivers must ignore fields they do not know.
const SchemaVersion = 1

// Envelope is what the SMTP transaction said about a message, as opposed to
// what its headers say.
type Envelope struct {
	MailFrom   string   `json:"mail_from"`
	RcptTo     []string `json:"rcpt_to"`
	Helo       string   `json:"helo"`
	RemoteAddr string   `json:"remote_addr"`
	TLS        *TLS     `json:"tls"`
	// SMTPUTF8 is true when the client declared SMTPUTF8 at MAIL (RFC 6531).
	SMTPUTF8 bool `json:"smtputf8,omitempty"`
	// Body is the MAIL BODY= parameter ("7BIT", "8BITMIME" or "BINARYMIME"), if given.
	Body string `json:"body,omitempty"`
}

// TLS describes the TLS state of the SMTP session, nil when plaintext.
type TLS struct {
	Version    string `json:"version"`
	Cipher     string `json:"cipher"`
	ServerName string `json:"server_name,omitempty"`
}

// Event is the webhook body.
type Event struct {
	Type      string    `json:"type"`
	Version   int       `json:"version"`
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Data is the parsed message and its envelope.
type Data struct {
	ID          string       `json:"id"`
	ReceivedAt  time.Time    `json:"received_at"`
	Envelope    Envelope     `json:"envelope"`
	MessageID   string       `json:"message_id"`
	Subject     string       `json:"subject"`
	Date        string       `json:"date"`
	From        []Address    `json:"from"`
	To          []Address    `json:"to"`
	Cc          []Address    `json:"cc"`
	ReplyTo     []Address    `json:"reply_to"`
	InReplyTo   string       `json:"in_reply_to"`
	References  []string     `json:"references"`
	Headers     []Header     `json:"headers"`
	Text        string       `json:"text"`
	HTML        string       `json:"html"`
	Attachments []Attachment `json:"attachments"`
	Raw         Raw          `json:"raw"`
	Warnings    []string     `json:"warnings"`
}

// Address is a decoded mailbox.
type Address struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// Header is one header field, name as written, value unfolded and decoded.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Attachment is any non-body MIME part: attachments and inline parts.
type Attachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	Disposition string `json:"disposition"`
	ContentID   string `json:"content_id"`
	SHA256      string `json:"sha256"`
	Content     []byte `json:"content"` // base64 in JSON
}

// Raw locates the raw message in the store.
type Raw struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}
