package queue

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/mailhook/mailhook/internal/jsonenc"
)

// A record is encoded twice on every delivered message (by Accept, and by
// the move to its final state), and encoding/json's reflection took 4-5 %
// of mailhook's CPU at 2 KB × 32 sessions. appendRecord writes the bytes
// json.Marshal would, field by field: FuzzRecordJSON and
// TestRecordJSONFields hold it to that, the second for every field the
// types declare, so that a field added to them without a line here fails.

// marshalRecord is json.Marshal(d), faster.
func marshalRecord(d *Delivery) ([]byte, error) {
	return appendRecordJSON(make([]byte, 0, 1024), d)
}

// appendRecordJSON appends json.Marshal(d) to b.
func appendRecordJSON(b []byte, d *Delivery) ([]byte, error) {
	if !encodableTimes(d) {
		j, err := json.Marshal(d) // and its error
		return append(b, j...), err
	}
	return appendRecord(b, d), nil
}

// encodableTimes reports whether jsonenc.Time can write every time in d
// (jsonenc.TimeOK).
func encodableTimes(d *Delivery) bool {
	ok := jsonenc.TimeOK
	if !ok(d.ReceivedAt) || !ok(d.CreatedAt) || !ok(d.NextAttemptAt) || !ok(d.ReplayedAt) {
		return false
	}
	if d.Claim != nil && !ok(d.Claim.ExpiresAt) {
		return false
	}
	for i := range d.Attempts {
		if !ok(d.Attempts[i].At) {
			return false
		}
	}
	return true
}

// appendRecord appends what json.Marshal(d) returns, given encodableTimes(d).
func appendRecord(b []byte, d *Delivery) []byte {
	b = append(b, `{"version":`...)
	b = strconv.AppendInt(b, int64(d.Version), 10)
	b = appendField(b, "id", d.ID)
	b = appendField(b, "event_id", d.EventID)
	b = appendField(b, "endpoint", d.Endpoint)
	b = append(b, `,"envelope":`...)
	b = d.Envelope.AppendJSON(b, true)
	b = appendTimeField(b, "received_at", d.ReceivedAt)
	b = append(b, `,"raw":{"key":`...)
	b = appendString(b, d.Raw.Key)
	b = appendIntField(b, "size", d.Raw.Size)
	b = appendField(b, "sha256", d.Raw.SHA256)
	b = append(b, '}')
	if d.Records != 0 {
		b = appendIntField(b, "records", int64(d.Records))
	}
	b = appendField(b, "state", string(d.State))
	b = appendTimeField(b, "created_at", d.CreatedAt)
	if !d.NextAttemptAt.IsZero() {
		b = appendTimeField(b, "next_attempt_at", d.NextAttemptAt)
	}
	if !d.ReplayedAt.IsZero() {
		b = appendTimeField(b, "replayed_at", d.ReplayedAt)
	}
	if d.Replays != 0 {
		b = appendIntField(b, "replays", int64(d.Replays))
	}
	b = append(b, `,"attempts":`...)
	if d.Attempts == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range d.Attempts {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendAttempt(b, &d.Attempts[i])
		}
		b = append(b, ']')
	}
	if d.LastError != "" {
		b = appendField(b, "last_error", d.LastError)
	}
	if d.ParseCut != "" {
		b = appendField(b, "parse_cut", d.ParseCut)
	}
	if c := d.Claim; c != nil {
		b = append(b, `,"claim":{"owner":`...)
		b = appendString(b, c.Owner)
		if c.Host != "" {
			b = appendField(b, "host", c.Host)
		}
		if c.PID != 0 {
			b = appendIntField(b, "pid", int64(c.PID))
		}
		if c.Proc != "" {
			b = appendField(b, "proc", c.Proc)
		}
		b = appendTimeField(b, "expires_at", c.ExpiresAt)
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendAttempt(b []byte, a *Attempt) []byte {
	b = append(b, `{"at":`...)
	b = appendTime(b, a.At)
	if a.Endpoint != "" {
		b = appendField(b, "endpoint", a.Endpoint)
	}
	if a.Status != 0 {
		b = appendIntField(b, "status", int64(a.Status))
	}
	if a.Error != "" {
		b = appendField(b, "error", a.Error)
	}
	b = appendIntField(b, "latency_ms", a.LatencyMS)
	if a.Response != "" {
		b = appendField(b, "response", a.Response)
	}
	if a.Unfinished {
		b = append(b, `,"unfinished":true`...)
	}
	return append(b, '}')
}

// appendKey appends ,"name": (name needs no escaping).
func appendKey(b []byte, name string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

func appendField(b []byte, name, value string) []byte {
	return appendString(appendKey(b, name), value)
}

func appendIntField(b []byte, name string, v int64) []byte {
	return strconv.AppendInt(appendKey(b, name), v, 10)
}

func appendTimeField(b []byte, name string, t time.Time) []byte {
	return appendTime(appendKey(b, name), t)
}

// appendTime appends t as time.Time's MarshalJSON does (given
// encodableTimes).
func appendTime(b []byte, t time.Time) []byte { return jsonenc.Time(b, t) }

// appendString appends s quoted as json.Marshal quotes it (HTML escaped).
func appendString(b []byte, s string) []byte { return jsonenc.String(b, s, true) }
