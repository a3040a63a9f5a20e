package queue

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailhook/mailhook/event"
)

// RecordVersion is the schema version written in every delivery record.
const RecordVersion = 1

// State is where a delivery stands.
type State string

// The states of a delivery. A record is stored under the key prefix of its
// state.
const (
	StatePending   State = "pending"
	StateDelivered State = "delivered"
	StateFailed    State = "failed"
)

// Key prefixes and layout (see the package documentation).
const (
	RawPrefix       = "raw/"
	DeliveriesRoot  = "deliveries/"
	PendingPrefix   = DeliveriesRoot + "pending/"
	DeliveredPrefix = DeliveriesRoot + "delivered/"
	FailedPrefix    = DeliveriesRoot + "failed/"
	// LeasePrefix holds the per-delivery leases between replicas
	// (deliveries/leases/<recid>; see lease.go).
	LeasePrefix = DeliveriesRoot + "leases/"

	recordExt = ".json"
	rawExt    = ".eml"
)

// ErrNoEndpoint is the LastError of a delivery whose recipients had no
// webhook endpoint when the message was accepted.
var ErrNoEndpoint = errors.New("no webhook endpoint configured")

// errUnfinished is the Error of an attempt persisted before it was made.
const errUnfinished = "no result recorded"

// errOutcomeLost is the LastError of a failed record whose outcome a
// crash cut from it (see Queue.get).
const errOutcomeLost = "failed; the outcome was lost in a crash"

// RawKey is the store key of a message's raw object.
func RawKey(msgID string) string { return RawPrefix + msgID + rawExt }

// RecordKey is the store key of a delivery record in the given state.
func RecordKey(s State, recID string) string {
	return DeliveriesRoot + string(s) + "/" + recID + recordExt
}

// LeaseKey is the store key of the lease on a pending delivery.
func LeaseKey(recID string) string { return LeasePrefix + recID }

// RecordID is the id of the n-th (1-based) delivery record of a message.
func RecordID(msgID string, n int) string { return msgID + "-" + strconv.Itoa(n) }

// WebhookID is the webhook-id of d's event: the message's id for its
// first delivery record, which for most messages (one endpoint) is their
// only one, and the record's id, "<msgid>-N", for the N-th: a message
// routed to several endpoints makes a different event for each (its own
// recipients), and Standard Webhooks ids name one event, so a receiver
// behind two routes that drops duplicates by id keeps both. The same on
// every attempt and replay of d.
func (d *Delivery) WebhookID() string {
	if d.ID == "" || d.ID == RecordID(d.EventID, 1) {
		return d.EventID
	}
	return d.ID
}

// MessageID is the id of the message a RecordID belongs to.
func MessageID(recID string) string {
	msg, _, _ := strings.Cut(recID, "-")
	return msg
}

// ValidRecordID reports whether s has the shape of a RecordID. Use it before
// an id from outside (a command line, a URL) goes into a store key.
func ValidRecordID(s string) bool {
	msg, n, ok := strings.Cut(s, "-")
	if !ok || !event.ValidID(msg) || n == "" || len(n) > 4 || n[0] == '0' {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return false
		}
	}
	return true
}

// Attempt is one try at delivering, as recorded in the delivery log.
type Attempt struct {
	// At is when the attempt started.
	At time.Time `json:"at"`
	// Endpoint is where it was sent (it changes when a replay overrides it).
	Endpoint string `json:"endpoint,omitempty"`
	// Status is the receiver's HTTP status, 0 if there was no response.
	Status int `json:"status,omitempty"`
	// Error is the transport error or a short reason, "" on a response.
	Error     string `json:"error,omitempty"`
	LatencyMS int64  `json:"latency_ms"`
	// Response holds the first 1 KiB of the response body.
	Response string `json:"response,omitempty"`
	// Unfinished marks an attempt persisted before the request went out
	// whose result was never recorded (yet).
	Unfinished bool `json:"unfinished,omitempty"`
}

// MaxResponseBytes bounds Attempt.Response.
const MaxResponseBytes = 1024

// Summary is a short description of the attempt's result for LastError.
func (a Attempt) Summary() string {
	switch {
	case a.Error != "" && a.Status != 0:
		return fmt.Sprintf("HTTP %d: %s", a.Status, a.Error)
	case a.Error != "":
		return a.Error
	case a.Status != 0:
		return fmt.Sprintf("HTTP %d", a.Status)
	}
	return ""
}

// Delivery is one delivery record: one message to one endpoint. It is a
// value read from the store; the Queue methods that change it update it in
// place only after the store has accepted the change. A Delivery is not safe
// for concurrent use.
type Delivery struct {
	Version  int    `json:"version"`
	ID       string `json:"id"`
	EventID  string `json:"event_id"`
	Endpoint string `json:"endpoint"`
	// Envelope is the message's envelope with RcptTo narrowed to the
	// recipients routed to Endpoint.
	Envelope   event.Envelope `json:"envelope"`
	ReceivedAt time.Time      `json:"received_at"`
	Raw        event.Raw      `json:"raw"`
	// Records is how many delivery records the message has (its
	// endpoints, and one for recipients without any), all made by
	// Accept: ids RecordID(EventID, 1) to RecordID(EventID, Records).
	// 0 in records written before it was kept.
	Records       int       `json:"records,omitempty"`
	State         State     `json:"state"`
	CreatedAt     time.Time `json:"created_at"`
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	ReplayedAt    time.Time `json:"replayed_at,omitzero"`
	Replays       int       `json:"replays,omitempty"`
	Attempts      []Attempt `json:"attempts"`
	LastError     string    `json:"last_error,omitempty"`
	// ParseCut is the MIME part at which the first render's parse ran
	// out of time (parse.Options.BudgetSpent): later renders stop there
	// too (parse.Options.StopAt), so that every attempt and replay
	// carries the same event. "" for the messages that never get there.
	ParseCut string `json:"parse_cut,omitempty"`
	// Claim is the accepting replica's lease, written with the record by
	// Accept and dropped by its first update (see Claims).
	Claim *Claim `json:"claim,omitempty"`

	etag string // store ETag of the version read or written last, for IfMatch
	// size is the size of the object read or written last (its documents
	// so far, on a store that appends; see Queue.update).
	size int64
	// claimedAt is when this process started writing Claim (monotonic
	// clock); zero in a record read from the store.
	claimedAt time.Time
	// raw is the raw message kept in memory by Accept for the first
	// attempt (see Queue.OpenRaw), or nil.
	raw *cachedRaw
	// fresh: Accept made d in this process and d has not been updated
	// nor its raw message read since (see Verified).
	fresh bool
}

// Claim is a lease kept in the pending record itself: no replica but
// Owner attempts the delivery before ExpiresAt (by the owner's clock). It
// has the fields of a Lease; it is never renewed in place (the owner
// takes the delivery's Lease instead when an attempt outlasts it).
type Claim struct {
	Owner     string    `json:"owner"`
	Host      string    `json:"host,omitempty"`
	PID       int       `json:"pid,omitempty"`
	Proc      string    `json:"proc,omitempty"` // LeaseOwner.Proc
	ExpiresAt time.Time `json:"expires_at"`
}

// ClaimedAt is when this process began writing d's Claim, by the monotonic
// clock, or the zero time if d does not carry a Claim this process wrote.
func (d *Delivery) ClaimedAt() time.Time {
	if d.Claim == nil {
		return time.Time{}
	}
	return d.claimedAt
}

// RetryWindowStart is when the delivery's retry window began: the last
// replay, or the time the message was received.
func (d *Delivery) RetryWindowStart() time.Time {
	if !d.ReplayedAt.IsZero() {
		return d.ReplayedAt
	}
	return d.ReceivedAt
}

// clone returns a copy that shares nothing mutable with d.
// Updates start from a clone, so the clone holds no Claim: the first
// update of a record ends its claim.
func (d *Delivery) clone() *Delivery {
	c := *d
	c.Attempts = slices.Clone(d.Attempts)
	c.Envelope.RcptTo = slices.Clone(d.Envelope.RcptTo)
	c.Claim, c.claimedAt = nil, time.Time{}
	c.raw, c.fresh = nil, false
	return &c
}

// lastUnfinished reports whether the last attempt is an unfinished one.
func (d *Delivery) lastUnfinished() bool {
	return len(d.Attempts) > 0 && d.Attempts[len(d.Attempts)-1].Unfinished
}

// settle records a as the result of the unfinished attempt, or as a new
// attempt when there is none. A zero a records nothing.
func (d *Delivery) settle(a Attempt) {
	if a.At.IsZero() {
		return
	}
	a.Unfinished = false
	if d.lastUnfinished() {
		d.Attempts[len(d.Attempts)-1] = a
		return
	}
	d.Attempts = append(d.Attempts, a)
}
