package queue

import (
	"context"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/store"
)

// OrphanMinAge is the youngest a raw message without records can be and
// still be taken for an orphan by ExpireOrphans: Accept makes the raw
// object visible one write (an S3 PUT, or a link on the filesystem store)
// before its records, and no write takes an hour.
const OrphanMinAge = time.Hour

// ExpireOrphans deletes the raw messages received before cutoff (and
// OrphanMinAge ago at least) that no delivery record in any state refers
// to. They are left by a crash between Accept's writes of the raw object
// and of its records (a message that was never acknowledged), or between
// Expire's deletion of a message's last record and of its raw message.
// Nothing else can refer to them, so they would stay forever.
//
// It lists raw/ and the three record states side by side, oldest first
// (keys sort by message id, so by time), and stops at cutoff: keep cutoff
// where retention keeps few records older than it, or the listings read
// the whole store. A raw message that the listings saw no record of is
// looked for once more, in each state by its id, pending last again (see
// unreferenced), before it is deleted: a record moving between states
// while the listings pass it is seen at least once.
//
// It returns how many raw messages it deleted; on error, those deleted so
// far, and the rest is left for the next call.
func (q *Queue) ExpireOrphans(ctx context.Context, cutoff time.Time) (int, error) {
	if latest := time.Now().Add(-OrphanMinAge); cutoff.After(latest) {
		cutoff = latest
	}
	states := []State{StatePending, StateFailed, StateDelivered}
	cursors := make([]*msgCursor, len(states))
	for i, st := range states {
		cursors[i] = newMsgCursor(store.ListKeys(ctx, q.store, DeliveriesRoot+string(st)+"/"), recordMessage)
		defer cursors[i].stop()
	}
	raws := newMsgCursor(store.ListKeys(ctx, q.store, RawPrefix), rawMessage)
	defer raws.stop()
	deleted := 0
	for {
		msgID, err := raws.advance()
		if err != nil {
			return deleted, fmt.Errorf("queue: expire orphans: %w", err)
		}
		if msgID == "" || !event.IDTime(msgID).Before(cutoff) {
			return deleted, nil // keys sort by time: the rest is younger
		}
		seen := false
		for _, c := range cursors {
			found, err := c.seek(msgID)
			if err != nil {
				return deleted, fmt.Errorf("queue: expire orphans: %w", err)
			}
			seen = seen || found
		}
		if seen {
			continue
		}
		refs, err := q.hasRecords(ctx, msgID)
		if err != nil {
			return deleted, err
		}
		if refs {
			continue
		}
		if err := q.store.Delete(ctx, RawKey(msgID)); err != nil {
			return deleted, fmt.Errorf("queue: expire orphan %s: %w", msgID, err)
		}
		deleted++
	}
}

// hasRecords reports whether a record of message msgID is in some state,
// looking in pending, failed, delivered and pending again.
func (q *Queue) hasRecords(ctx context.Context, msgID string) (bool, error) {
	for _, st := range []State{StatePending, StateFailed, StateDelivered, StatePending} {
		prefix := DeliveriesRoot + string(st) + "/" + msgID + "-"
		for key, err := range store.ListKeys(ctx, q.store, prefix) {
			if err != nil {
				return false, fmt.Errorf("queue: expire orphan %s: %w", msgID, err)
			}
			if recordMessage(strings.TrimPrefix(key, DeliveriesRoot+string(st)+"/")) == msgID {
				return true, nil
			}
		}
	}
	return false, nil
}

// recordMessage is the message id of a record's file name
// ("<recid>.json"), or "" if name is not one.
func recordMessage(name string) string {
	id, ok := strings.CutSuffix(name, recordExt)
	if !ok || !ValidRecordID(id) {
		return ""
	}
	return MessageID(id)
}

// rawMessage is the message id of a raw object's file name
// ("<msgid>.eml"), or "" if name is not one.
func rawMessage(name string) string {
	id, ok := strings.CutSuffix(name, rawExt)
	if !ok || !event.ValidID(id) {
		return ""
	}
	return id
}

// msgCursor walks a listing of one prefix in key order, yielding the
// message ids of the names that msgOf recognises (keys under one prefix
// sort by message id: ids have a fixed length).
type msgCursor struct {
	next  func() (string, error, bool)
	stop  func()
	msgOf func(name string) string
	cur   string // the message id at the cursor; "" before the first and after the last
	done  bool
}

func newMsgCursor(keys iter.Seq2[string, error], msgOf func(string) string) *msgCursor {
	next, stop := iter.Pull2(keys)
	return &msgCursor{next: next, stop: stop, msgOf: msgOf}
}

// advance moves to the next recognised name and returns its message id,
// "" at the end.
func (c *msgCursor) advance() (string, error) {
	for !c.done {
		key, err, ok := c.next()
		if !ok {
			c.done, c.cur = true, ""
			break
		}
		if err != nil {
			c.done, c.cur = true, ""
			return "", err
		}
		if m := c.msgOf(key[strings.LastIndexByte(key, '/')+1:]); m != "" {
			c.cur = m
			return m, nil
		}
	}
	return "", nil
}

// seek advances while the cursor is before msgID and reports whether it
// then stands on msgID.
func (c *msgCursor) seek(msgID string) (bool, error) {
	for !c.done && c.cur < msgID {
		if _, err := c.advance(); err != nil {
			return false, err
		}
	}
	return !c.done && c.cur == msgID, nil
}
