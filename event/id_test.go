package event

import (
	"sort"
	"testing"
	"time"
)

func TestNewIDShapeAndOrder(t *testing.T) {
	base := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	var ids []string
	for i := 0; i < 1000; i++ {
		id := NewID(base.Add(time.Duration(i) * time.Millisecond))
		if !ValidID(id) {
			t.Fatalf("NewID = %q, not ValidID", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		ids = append(ids, id)
		if got, want := IDTime(id), base.Add(time.Duration(i)*time.Millisecond); !got.Equal(want) {
			t.Fatalf("IDTime(%s) = %s, want %s", id, got, want)
		}
	}
	if !sort.StringsAreSorted(ids) {
		t.Error("ids made at increasing times do not sort in that order")
	}
}

func TestEncodeKnownValue(t *testing.T) {
	// The ULID spec's maximum value.
	var max [16]byte
	for i := range max {
		max[i] = 0xff
	}
	if got := encode(max); got != "7ZZZZZZZZZZZZZZZZZZZZZZZZZ" {
		t.Errorf("encode(max) = %s", got)
	}
	if got := encode([16]byte{}); got != "00000000000000000000000000" {
		t.Errorf("encode(0) = %s", got)
	}
}

func TestValidIDRejects(t *testing.T) {
	for _, s := range []string{"", "../../etc/passwd", "01J0000000000000000000000", "01J000000000000000000000000",
		"01J00000000000000000000I00", "81J0000000000000000000TEST", "01j0000000000000000000test", "01J0000000000000000000/EST"} {
		if ValidID(s) {
			t.Errorf("ValidID(%q) = true", s)
		}
	}
}

func TestIDTimeOfInvalid(t *testing.T) {
	for _, id := range []string{"", "8ZZZZZZZZZZZZZZZZZZZZZZZZZ", "01KB000000000000000000000I", "01kb0000000000000000000000"} {
		if got := IDTime(id); !got.IsZero() {
			t.Errorf("IDTime(%q) = %s, want zero", id, got)
		}
	}
	if got := IDTime("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"); got.UnixMilli() != 1<<48-1 {
		t.Errorf("IDTime(max) = %d ms, want 2^48-1", got.UnixMilli())
	}
}
