package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"math"
	"os"
	"time"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/route"
	"github.com/mailhook/mailhook/store"
)

// replay puts failed deliveries back to pending, or with --pending makes
// pending ones due now, perhaps to another endpoint. It talks only to the
// store, so it works while servers run: they pick the deliveries up at
// their next rescan of the pending queue, or read the new version before
// their next attempt.
// minReplayRate and maxReplayRate bound --rate: a ticker's interval is at
// least a nanosecond and fits a time.Duration.
const (
	minReplayRate = 1e-6
	maxReplayRate = 1e9
)

func replay(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("replay", flag.ContinueOnError)
	fl.SetOutput(stderr)
	all := fl.Bool("failed", false, "replay every failed delivery")
	pending := fl.Bool("pending", false, "replay pending deliveries instead of failed ones: send them now, to --endpoint or where their recipients route now (every one, or those --id or --since choose)")
	id := fl.String("id", "", "replay the failed deliveries of this event id (or one delivery record id, EVENTID-N)")
	since := fl.String("since", "", "replay failed deliveries of mail received since this duration ago (24h) or RFC 3339 time")
	endpoint := fl.String("endpoint", "", "send to this URL instead of the recorded endpoint")
	dryRun := fl.Bool("dry-run", false, "list what would be replayed, change nothing")
	rate := fl.Float64("rate", 50, "at most this many deliveries re-queued per second (0: no limit)")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // the flag set printed the usage, as asked
		}
		return usageError{err}
	}
	if fl.NArg() > 0 {
		return usagef("replay: unexpected argument %q", fl.Arg(0))
	}
	if !*all && !*pending && *id == "" && *since == "" {
		return usagef("replay: say what to replay: --failed, --pending, --id EVENT_ID or --since DURATION_OR_RFC3339")
	}
	if *all && *pending {
		return usagef("replay: --failed and --pending: give one (failed deliveries are replayed by default)")
	}
	if *id != "" && !event.ValidID(*id) && !queue.ValidRecordID(*id) {
		return usagef("replay: --id %q is not an event id", *id)
	}
	var from time.Time
	if *since != "" {
		var err error
		if from, err = queue.ParseSince(*since, time.Now()); err != nil {
			return usagef("replay: --since: %v", err)
		}
	}
	if *endpoint != "" {
		if err := route.ValidEndpoint(*endpoint); err != nil {
			return usagef("replay: --endpoint: %v", err)
		}
	}
	if math.IsNaN(*rate) || *rate < 0 || *rate > maxReplayRate || *rate > 0 && *rate < minReplayRate {
		return usagef("replay: --rate %v: want 0 (no limit) or deliveries a second from %g to %g", *rate, minReplayRate, float64(maxReplayRate))
	}
	cfg, err := loadConfig(lookup)
	if err != nil {
		return err
	}
	if u, err := config.ParseStore(cfg.Store); err == nil && u.Scheme == "file" {
		// Opening a filesystem store creates it: a mistyped path would
		// look like "nothing to replay", and a dry run would write.
		if _, err := os.Stat(u.Path); errors.Is(err, iofs.ErrNotExist) {
			return usagef("replay: MAILHOOK_STORE=%q: no such directory", cfg.Store)
		}
	}
	st, err := openStore(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	rules, _ := route.ParseRules(cfg.Routes)
	q := queue.New(queue.Options{Store: st, Router: route.NewTable(rules, cfg.WebhookURL), Logger: newLogger(cfg, io.Discard)})

	var pace <-chan time.Time
	if *rate > 0 && !*dryRun {
		t := time.NewTicker(time.Duration(float64(time.Second) / *rate))
		defer t.Stop()
		pace = t.C
	}
	state, records, whereTo := "failed", q.Failed(ctx), q.ReplayEndpoint
	if *pending {
		state, records, whereTo = "pending", q.Pending(ctx), q.PendingEndpoint
	}
	var n, failed int
	var stopped error // the context's, when interrupted
	for d, err := range records {
		if err != nil {
			// A record that cannot be read (the iteration goes on), or
			// the listing failing (it ends).
			fmt.Fprintf(stderr, "mailhook: replay: %v\n", err)
			failed++
			continue
		}
		if *id != "" && d.EventID != *id && d.ID != *id {
			continue
		}
		if !from.IsZero() && d.ReceivedAt.Before(from) {
			continue
		}
		to, err := whereTo(d, *endpoint)
		if *dryRun {
			if err != nil {
				// What the replay itself would report.
				fmt.Fprintf(stderr, "mailhook: would not replay %s: %v\n", d.ID, err)
				failed++
				continue
			}
			fmt.Fprintf(stdout, "would replay %s%s event %s to %s (last error: %s)\n", pendingWord(*pending), d.ID, d.EventID, route.RedactURL(to), d.LastError)
			n++
			continue
		}
		if pace != nil {
			select {
			case <-pace:
			case <-ctx.Done():
			}
		}
		if stopped = ctx.Err(); stopped != nil {
			break
		}
		if *pending {
			to, err = q.ReplayPending(ctx, d.ID, *endpoint)
		} else {
			err = q.Replay(ctx, d.ID, *endpoint)
		}
		if err != nil {
			if stopped = ctx.Err(); stopped != nil {
				break
			}
			if errors.Is(err, store.ErrNotFound) {
				// Listed, then replayed (or settled) by another process.
				fmt.Fprintf(stderr, "mailhook: replay %s: no longer %s (settled or replayed elsewhere)\n", d.ID, state)
				continue
			}
			fmt.Fprintf(stderr, "mailhook: replay %s: %v\n", d.ID, err)
			failed++
			continue
		}
		fmt.Fprintf(stdout, "replayed %s%s event %s to %s\n", pendingWord(*pending), d.ID, d.EventID, route.RedactURL(to))
		n++
	}
	verb := "replayed"
	if *dryRun {
		verb = "would replay"
	}
	fmt.Fprintf(stdout, "%s %d deliveries\n", verb, n)
	if stopped != nil {
		return fmt.Errorf("replay: stopped after %d deliveries: %w", n, stopped)
	}
	if failed > 0 {
		return fmt.Errorf("%d deliveries could not be replayed", failed)
	}
	if n == 0 && *id != "" {
		return fmt.Errorf("replay: no %s delivery with id %s", state, *id)
	}
	return nil
}

// pendingWord says "pending " before a pending delivery's id.
func pendingWord(pending bool) string {
	if pending {
		return "pending "
	}
	return ""
}
