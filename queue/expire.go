package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/store"
)

// Expired counts what an Expire call deleted (with several replicas
// expiring at once, an object may be counted by more than one).
type Expired struct {
	Records int // delivery records
	Raws    int // raw messages
}

// maxScan bounds the search for the records of a message written before
// Delivery.Records was kept.
const maxScan = 10000

// Expire applies a retention period to the records in state s
// (StateDelivered or StateFailed): it deletes those of messages received
// before cutoff that were also last written before it (delivered or
// failed then), oldest message first, and stops at the first message
// received at or after cutoff. Then, for each message it deleted a record
// of, it deletes the raw message if no record of the message is left in
// any state: a message with a delivery still pending, or a dead letter
// still kept, keeps its raw message for it.
//
// Records and raw messages already gone (another replica expiring the
// same ones) are not errors. A record that a replay moves from failed to
// pending while Expire deletes it may lose its raw message: replay dead
// letters before their retention ends. On error, what was deleted so far
// is counted and the rest is left for the next call.
func (q *Queue) Expire(ctx context.Context, s State, cutoff time.Time) (Expired, error) {
	if s != StateDelivered && s != StateFailed {
		return Expired{}, fmt.Errorf("queue: expire: state %q has no retention", s)
	}
	prefix := DeliveriesRoot + string(s) + "/"
	var done Expired
	var cur expiring
	finish := func() error {
		if cur.msgID == "" || cur.kept || len(cur.deleted) == 0 {
			return nil
		}
		gone, err := q.unreferenced(ctx, s, &cur)
		if err != nil || !gone {
			return err
		}
		if err := q.store.Delete(ctx, RawKey(cur.msgID)); err != nil {
			return fmt.Errorf("queue: expire raw %s: %w", cur.msgID, err)
		}
		done.Raws++
		return nil
	}
	for obj, err := range q.store.List(ctx, prefix) {
		if err != nil {
			return done, fmt.Errorf("queue: expire: list %s: %w", prefix, err)
		}
		id, ok := strings.CutSuffix(strings.TrimPrefix(obj.Key, prefix), recordExt)
		if !ok || !ValidRecordID(id) {
			continue
		}
		msgID := MessageID(id)
		if !event.IDTime(msgID).Before(cutoff) {
			break // keys sort by time: the rest is younger
		}
		if msgID != cur.msgID {
			if err := finish(); err != nil {
				return done, err
			}
			cur = expiring{msgID: msgID}
		}
		if !obj.ModTime.Before(cutoff) {
			cur.kept = true // finished recently: kept, and so is the raw message
			continue
		}
		if cur.records == 0 {
			// Every record of a message carries its count: one read a
			// message, at its first record, unless that one lacks it.
			d, err := q.get(ctx, obj.Key)
			switch {
			case errors.Is(err, store.ErrNotFound):
				// Expired by another process, or replayed: the check
				// below looks for it as for one deleted here.
				cur.deleted = append(cur.deleted, recordNumber(id))
				continue
			case errors.Is(err, store.ErrUnavailable) || ctx.Err() != nil:
				return done, fmt.Errorf("queue: expire %s: %w", id, err)
			case err != nil:
				// Unreadable: it is expired all the same, and the
				// message's record count stays unknown.
				q.log.LogAttrs(ctx, slog.LevelWarn, "retention: expiring an unreadable record", slog.String("key", obj.Key), slog.String("err", err.Error()))
			default:
				cur.records = d.Records
			}
		}
		if err := q.store.Delete(ctx, obj.Key); err != nil {
			return done, fmt.Errorf("queue: expire %s: %w", id, err)
		}
		done.Records++
		cur.deleted = append(cur.deleted, recordNumber(id))
	}
	return done, finish()
}

// expiring is the message whose records Expire is going through.
type expiring struct {
	msgID   string
	records int   // its Records, 0 = unknown
	deleted []int // numbers of the records Expire deleted
	kept    bool  // a record of it in the expired state was kept
}

// unreferenced reports whether no record of m is left in any state, m's
// records in state s being those Expire has deleted.
func (q *Queue) unreferenced(ctx context.Context, s State, m *expiring) (bool, error) {
	last := m.records
	if last == 0 {
		last = maxScan
	}
	for n := 1; n <= last; n++ {
		id := RecordID(m.msgID, n)
		states := []State{StatePending, StateFailed, StateDelivered, StatePending}
		switch {
		case slices.Contains(m.deleted, n) && s == StateFailed:
			// Deleted here, but a replay may have put it back.
			states = []State{StatePending}
		case slices.Contains(m.deleted, n):
			continue // delivered is final
		}
		// Pending last again: a replay writes pending before it deletes
		// failed, and every other move writes its target before it
		// removes its source (or renames), so a record moving while it
		// is looked for is seen at least once.
		for _, st := range states {
			_, err := q.store.Stat(ctx, RecordKey(st, id))
			if err == nil {
				return false, nil
			}
			if !errors.Is(err, store.ErrNotFound) {
				return false, fmt.Errorf("queue: expire %s: %w", id, err)
			}
		}
		if m.records == 0 && !slices.Contains(m.deleted, n) {
			return true, nil // past the last record of an older message
		}
	}
	return true, nil
}

// recordNumber is the n of RecordID(msg, n); id is a ValidRecordID.
func recordNumber(id string) int {
	_, s, _ := strings.Cut(id, "-")
	n, _ := strconv.Atoi(s)
	return n
}
