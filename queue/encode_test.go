package queue

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/internal/fieldtest"
)

// fullRecord returns a Delivery with every exported field set, nested
// ones too (TestRecordJSONFields checks that it stays so).
func fullRecord() *Delivery {
	at := time.Date(2026, 11, 28, 12, 0, 0, 123456789, time.UTC)
	return &Delivery{
		Version:  RecordVersion,
		ID:       "01KB0000000000000000000000-1",
		EventID:  "01KB0000000000000000000000",
		Endpoint: "https://app.example/hook?a=1&b=<2>",
		Envelope: event.Envelope{
			MailFrom:   "sender@example.org",
			RcptTo:     []string{"a@example.com", "b+tag@example.com"},
			Helo:       "mx.example.org",
			RemoteAddr: "192.0.2.1:5555",
			TLS:        &event.TLS{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", ServerName: "mx.example.com"},
			SMTPUTF8:   true,
			Body:       "8BITMIME",
		},
		ReceivedAt:    at,
		Raw:           event.Raw{Key: "raw/01KB0000000000000000000000.eml", Size: 2048, SHA256: "ab12"},
		Records:       2,
		State:         StatePending,
		CreatedAt:     at.Add(time.Millisecond),
		NextAttemptAt: at.Add(time.Second),
		ReplayedAt:    at.Add(time.Hour).In(time.FixedZone("X", -(3*3600 + 30*60))),
		Replays:       2,
		Attempts: []Attempt{{
			At: at, Endpoint: "https://app.example/hook", Status: 503, Error: `"quoted" \ and a tab	`,
			LatencyMS: 12, Response: "Service Unavailable\n\u2028ünïcode \xff", Unfinished: true,
		}},
		LastError: "HTTP 503",
		ParseCut:  "1.2",
		Claim:     &Claim{Owner: "r1", Host: "host-a", PID: 42, Proc: "12345", ExpiresAt: at.Add(15 * time.Second)},
	}
}

// TestRecordJSONFields: appendRecord writes what json.Marshal writes for
// a record with every field set, and for the zero and accepted shapes.
// It fails when a type gains a field that fullRecord does not set.
func TestRecordJSONFields(t *testing.T) {
	full := fullRecord()
	fieldtest.AllSet(t, full, "set it in fullRecord, and encode it in appendRecord")

	accepted := fullRecord()
	accepted.Envelope.TLS, accepted.Envelope.SMTPUTF8, accepted.Envelope.Body = nil, false, ""
	accepted.ReplayedAt, accepted.Replays, accepted.LastError, accepted.ParseCut = time.Time{}, 0, "", ""
	accepted.Attempts = []Attempt{}
	accepted.Claim.Host, accepted.Claim.PID, accepted.Claim.Proc = "", 0, ""

	for name, d := range map[string]*Delivery{"full": full, "accepted": accepted, "zero": {}} {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			got, err := marshalRecord(d)
			if err != nil {
				t.Fatalf("marshalRecord: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("marshalRecord differs from json.Marshal:\ngot  %s\nwant %s", got, want)
			}
		})
	}
}

// FuzzRecordJSON: marshalRecord returns what json.Marshal returns, bytes
// and failure, for any strings, numbers and times.
func FuzzRecordJSON(f *testing.F) {
	f.Add("01KB0000000000000000000000-1", "https://app.example/hook", "a@example.com", "no result recorded", "ok", 200, int64(3), int64(1796603562), int64(318050977), 0, uint8(0))
	f.Add("<&>", "\u2028\u2029", "\xff\xfe", "\x00\x1f\x7f", `"\`, -1, int64(-5), int64(-62135596801), int64(0), 3600, uint8(255))
	f.Add("", "", "ünï", "\t\n\r\b\f", "", 0, int64(0), int64(253402300800), int64(999999999), -86400, uint8(7))
	f.Add("x", "y", "z", "w", "v", 1, int64(1), int64(0), int64(1), 59, uint8(3))
	f.Fuzz(func(t *testing.T, id, endpoint, addr, errText, resp string, status int, latency, sec, nsec int64, offset int, flags uint8) {
		at := time.Unix(sec, nsec).In(time.FixedZone("Z", offset))
		d := &Delivery{
			Version:  int(latency),
			ID:       id,
			EventID:  id,
			Endpoint: endpoint,
			Envelope: event.Envelope{
				MailFrom: addr, RcptTo: []string{addr, resp}, Helo: errText, RemoteAddr: endpoint,
				SMTPUTF8: flags&1 != 0, Body: resp,
			},
			ReceivedAt: at,
			Raw:        event.Raw{Key: id, Size: latency, SHA256: resp},
			State:      State(errText),
			CreatedAt:  at.Add(time.Duration(nsec)),
			Replays:    status,
			LastError:  errText,
		}
		if flags&2 != 0 {
			d.Envelope.TLS = &event.TLS{Version: addr, Cipher: errText, ServerName: resp}
			d.NextAttemptAt = at.UTC()
		}
		if flags&4 != 0 {
			d.Attempts = []Attempt{
				{At: at, Endpoint: endpoint, Status: status, Error: errText, LatencyMS: latency, Response: resp, Unfinished: flags&8 != 0},
				{At: at.UTC()},
			}
			d.ReplayedAt = at
		} else if flags&8 != 0 {
			d.Attempts = []Attempt{}
		}
		if flags&16 != 0 {
			d.Claim = &Claim{Owner: id, Host: addr, PID: status, Proc: resp, ExpiresAt: at}
		}
		if flags&32 != 0 {
			d.Envelope.RcptTo = nil
		}
		want, wantErr := json.Marshal(d)
		got, err := marshalRecord(d)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("marshalRecord error %v, json.Marshal error %v", err, wantErr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("marshalRecord differs from json.Marshal:\ngot  %s\nwant %s", got, want)
		}
	})
}

func BenchmarkMarshalRecord(b *testing.B) {
	// A delivered record as the move writes it.
	d := fullRecord()
	d.Endpoint = "https://app.example/hooks/mail"
	d.Envelope.TLS, d.Claim, d.LastError = nil, nil, ""
	d.Attempts = []Attempt{{At: d.ReceivedAt, Endpoint: d.Endpoint, Status: 204, LatencyMS: 3}}
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := marshalRecord(d); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzLastDocument: whatever a record object holds, reading it never
// panics; a version whose append was cut anywhere leaves the previous
// one; and a whole version appended after any damage (without a line
// break followed by "{", which no document holds) is the one read.
func FuzzLastDocument(f *testing.F) {
	f.Add([]byte(`{"version":1`), []byte("\x00\x00\x00"), 10, "HTTP 503")
	f.Add([]byte("\n{\n{"), []byte(`}{"id":"x"}`), 0, "")
	f.Add([]byte{}, []byte("\n"), 1<<20, "\u2028\n{")
	f.Fuzz(func(t *testing.T, obj, junk []byte, cut int, lastError string) {
		lastDocument(obj) // no panic, whatever it holds

		d1 := fullRecord()
		d2 := fullRecord()
		d2.Attempts = append(d2.Attempts, Attempt{At: d2.ReceivedAt, Status: 204})
		d2.LastError = lastError
		b1, err := marshalRecord(d1)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := marshalRecord(d2)
		if err != nil {
			t.Fatal(err)
		}
		junk = bytes.ReplaceAll(junk, []byte("\n{"), []byte("\n "))
		cut = min(max(cut, 0), len(b2)-1)

		got, whole, _ := lastDocument(append(append(slicesClone(b1), '\n'), b2[:cut]...))
		if got == nil || len(got.Attempts) != 1 || (cut > 0 && whole) {
			t.Fatalf("a version cut after %d bytes: got %+v (whole %v), want the previous one", cut, got, whole)
		}
		obj2 := append(append(append(slicesClone(b1), junk...), '\n'), b2...)
		got, _, _ = lastDocument(obj2)
		var want Delivery // lastError as JSON keeps it (invalid UTF-8 replaced)
		if err := json.Unmarshal(b2, &want); err != nil {
			t.Fatal(err)
		}
		if got == nil || len(got.Attempts) != 2 || got.LastError != want.LastError {
			t.Fatalf("a version after %q: got %+v, want it", junk, got)
		}
	})
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }
