package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mailhook/mailhook/event"
	"github.com/mailhook/mailhook/queue"
	"github.com/mailhook/mailhook/route"
	"github.com/mailhook/mailhook/store"
)

// AdminBackend is what the admin API needs from the delivery queue. In
// mailhook it is *queue.Queue plus a listing of record ids and the
// dispatcher's renderer.
type AdminBackend interface {
	// IDs yields the ids of the delivery records stored in state s, oldest
	// message first (in store key order), without reading them; only those
	// after the id after unless it is "".
	IDs(ctx context.Context, s queue.State, after string) iter.Seq2[string, error]
	// Load returns the record recID in whatever state it is. Errors wrap
	// store.ErrNotFound when there is none.
	Load(ctx context.Context, recID string) (*queue.Delivery, error)
	// OpenRaw opens the raw message of d. The caller closes it.
	OpenRaw(ctx context.Context, d *queue.Delivery) (io.ReadCloser, error)
	// Replay puts the failed delivery recID back on the queue, sent to
	// endpoint when it is not empty. Errors wrap store.ErrNotFound when
	// recID is not failed, queue.ErrNoEndpoint when there is nowhere to
	// send it.
	Replay(ctx context.Context, recID, endpoint string) error
	// ReplayEndpoint is where Replay would send the failed delivery d
	// (endpoint, when not empty, overriding). Errors wrap
	// queue.ErrNoEndpoint when there is nowhere to send it.
	ReplayEndpoint(d *queue.Delivery, endpoint string) (string, error)
	// Render returns the webhook body of d, the bytes that are POSTed.
	Render(ctx context.Context, d *queue.Delivery) ([]byte, error)
}

// Limits of the admin API.
const (
	defaultListLimit = 100
	maxListLimit     = 1000
	// maxReplayPerCall bounds the deliveries one POST /v1/replay handles;
	// the answer says "truncated" when more matched.
	maxReplayPerCall = 10000
	maxRequestBody   = 64 << 10
)

// admin serves the admin API under /v1/.
type admin struct {
	digest    [sha256.Size]byte // of the token: the token itself is not kept
	b         AdminBackend
	log       *slog.Logger
	now       func() time.Time
	maxReplay int
	mux       *http.ServeMux
}

// NewAdmin returns the admin API, to be mounted at "/v1/" (see
// Handler.Handle). Every request must carry "Authorization: Bearer
// <token>"; others get 401. With an empty token the admin API is off and
// every request gets 404.
func NewAdmin(token string, b AdminBackend, log *slog.Logger) http.Handler {
	if token == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "admin API is off")
		})
	}
	return newAdmin(token, b, log)
}

func newAdmin(token string, b AdminBackend, log *slog.Logger) *admin {
	a := &admin{
		digest:    sha256.Sum256([]byte(token)),
		b:         b,
		log:       log,
		now:       time.Now,
		maxReplay: maxReplayPerCall,
		mux:       http.NewServeMux(),
	}
	a.route("GET", "/v1/deliveries", a.list)
	a.route("GET", "/v1/deliveries/{id}", a.show)
	a.route("POST", "/v1/deliveries/{id}/replay", a.replayOne)
	a.route("POST", "/v1/replay", a.replayMatching)
	a.route("GET", "/v1/events/{id}", a.event)
	a.route("GET", "/v1/events/{id}/raw", a.raw)
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such admin API route")
	})
	return a
}

// route registers h for method and path, and a JSON 405 for other methods.
func (a *admin) route(method, path string, h http.HandlerFunc) {
	a.mux.HandleFunc(method+" "+path, h)
	allow := method
	if method == http.MethodGet {
		allow += ", HEAD"
	}
	a.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "method not allowed: use "+method)
	})
}

func (a *admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(r) {
		// RFC 6750 §3: the challenge, with error="invalid_token" when a
		// token was given (§3.1). The token is never logged.
		challenge := `Bearer realm="mailhook"`
		if r.Header.Get("Authorization") != "" {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		a.log.LogAttrs(r.Context(), slog.LevelInfo, "admin API: unauthorized request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("remote_addr", r.RemoteAddr))
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	a.mux.ServeHTTP(w, r)
}

// authorized checks the bearer token. Comparing SHA-256 digests in
// constant time leaks neither the token's bytes nor its length.
func (a *admin) authorized(r *http.Request) bool {
	// RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; the scheme is
	// case-insensitive (RFC 9110 §11.1).
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	d := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(d[:], a.digest[:]) == 1
}

// listResponse is the answer of GET /v1/deliveries.
type listResponse struct {
	Deliveries []*queue.Delivery `json:"deliveries"`
	// Next is the "after" of the next page, "" on the last one.
	Next string `json:"next"`
}

// list serves GET /v1/deliveries?state=…&limit=…&after=…: one page of the
// records in a state, oldest first.
func (a *admin) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for _, name := range []string{"state", "limit", "after"} {
		if len(q[name]) > 1 {
			writeError(w, http.StatusBadRequest, name+": given more than once")
			return
		}
	}
	state := queue.State(q.Get("state"))
	switch state {
	case queue.StatePending, queue.StateFailed, queue.StateDelivered:
	default:
		writeError(w, http.StatusBadRequest, "state: want pending, failed or delivered")
		return
	}
	limit := defaultListLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if errors.Is(err, strconv.ErrRange) && s[0] != '-' {
			n, err = maxListLimit, nil // a larger one is taken as the largest
		}
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: want a number from 1 to %d", maxListLimit))
			return
		}
		limit = min(n, maxListLimit)
	}
	after := q.Get("after")
	if after != "" && !queue.ValidRecordID(after) {
		writeError(w, http.StatusBadRequest, "after: not a delivery id (EVENTID-N)")
		return
	}

	ctx := r.Context()
	resp := listResponse{Deliveries: []*queue.Delivery{}}
	for id, err := range a.b.IDs(ctx, state, after) { // the listing starts after it
		if err != nil {
			a.fail(w, r, err)
			return
		}
		// Ids list in key order, which is their string order.
		if after != "" && id <= after {
			continue
		}
		if len(resp.Deliveries) == limit {
			resp.Next = resp.Deliveries[limit-1].ID
			break
		}
		d, err := a.b.Load(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // moved on since it was listed
		}
		if queue.Unreadable(err) {
			// One damaged record must not hide the others.
			a.log.LogAttrs(ctx, slog.LevelWarn, "admin API: listing skips an unreadable record", slog.String("id", id), slog.String("error", err.Error()))
			continue
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if d.State != state {
			continue
		}
		resp.Deliveries = append(resp.Deliveries, redacted(d))
	}
	writeJSON(w, http.StatusOK, resp)
}

// show serves GET /v1/deliveries/{id}: one record, in any state.
func (a *admin) show(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !queue.ValidRecordID(id) {
		writeError(w, http.StatusBadRequest, "id: not a delivery id (EVENTID-N)")
		return
	}
	d, ok := a.load(w, r, id)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, redacted(d))
}

// redacted returns the record d as the admin API shows it: its endpoint
// URLs redacted as mailhook shows them everywhere (route.RedactURL: the
// password and query values, where credentials ride), for the record
// itself and for each attempt. The stored record keeps them whole, to
// send to.
func redacted(d *queue.Delivery) *queue.Delivery {
	c := *d
	c.Endpoint = route.RedactURL(d.Endpoint)
	c.Attempts = make([]queue.Attempt, len(d.Attempts))
	for i, at := range d.Attempts {
		at.Endpoint = route.RedactURL(at.Endpoint)
		c.Attempts[i] = at
	}
	return &c
}

// event serves GET /v1/events/{id}: the webhook body, byte for byte as it
// is POSTed. {id} is an event id (its first delivery's body) or a delivery
// id (the body sent to that delivery's endpoint: envelope.rcpt_to differs).
func (a *admin) event(w http.ResponseWriter, r *http.Request) {
	d, ok := a.loadEvent(w, r)
	if !ok {
		return
	}
	body, err := a.b.Render(r.Context(), d)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "the raw message of event "+d.EventID+" is gone")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// raw serves GET /v1/events/{id}/raw: the stored message, streamed byte for
// byte.
func (a *admin) raw(w http.ResponseWriter, r *http.Request) {
	d, ok := a.loadEvent(w, r)
	if !ok {
		return
	}
	rc, err := a.b.OpenRaw(r.Context(), d)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "the raw message of event "+d.EventID+" is gone")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", "message/rfc822")
	h.Set("Content-Disposition", `attachment; filename="`+d.EventID+`.eml"`)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if d.Raw.Size > 0 {
		h.Set("Content-Length", strconv.FormatInt(d.Raw.Size, 10))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if n, err := io.Copy(w, rc); err != nil {
		// Too late for a status: the client sees a short body.
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "admin API: raw download cut short",
			slog.String("event_id", d.EventID), slog.Int64("sent", n), slog.String("error", err.Error()))
	}
}

// replayBody is the optional body of POST /v1/deliveries/{id}/replay.
type replayBody struct {
	// Endpoint, if set, replaces the delivery's endpoint.
	Endpoint string `json:"endpoint"`
}

// replayOne serves POST /v1/deliveries/{id}/replay: 202 with the record,
// back on the queue.
func (a *admin) replayOne(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !queue.ValidRecordID(id) {
		writeError(w, http.StatusBadRequest, "id: not a delivery id (EVENTID-N)")
		return
	}
	var body replayBody
	if !decodeBody(w, r, &body) {
		return
	}
	if !validEndpoint(w, body.Endpoint) {
		return
	}
	d, ok := a.load(w, r, id)
	if !ok {
		return
	}
	if d.State != queue.StateFailed {
		writeError(w, http.StatusConflict, fmt.Sprintf("delivery %s is %s: only failed deliveries are replayed", id, d.State))
		return
	}
	ctx := r.Context()
	if err := a.b.Replay(ctx, id, body.Endpoint); err != nil {
		switch {
		case errors.Is(err, store.ErrNotFound):
			writeError(w, http.StatusConflict, fmt.Sprintf("delivery %s is no longer failed", id))
		case errors.Is(err, queue.ErrNoEndpoint):
			writeError(w, http.StatusUnprocessableEntity, noEndpoint)
		default:
			a.fail(w, r, err)
		}
		return
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "admin API: replay",
		slog.String("id", id), slog.Bool("endpoint_override", body.Endpoint != ""), slog.String("remote_addr", r.RemoteAddr))
	nd, err := a.b.Load(ctx, id)
	if err != nil {
		// The replay is done; only the report is missing.
		a.log.LogAttrs(ctx, slog.LevelWarn, "admin API: reload after replay", slog.String("id", id), slog.String("error", err.Error()))
		nd = d
		nd.State = queue.StatePending
	}
	writeJSON(w, http.StatusAccepted, redacted(nd))
}

const noEndpoint = `no webhook endpoint for this delivery: give one in "endpoint"`

// replayRequest is the body of POST /v1/replay. The filters combine: a
// failed delivery is replayed when it matches all that are given.
type replayRequest struct {
	// Failed selects every failed delivery.
	Failed bool `json:"failed"`
	// EventID selects the failed deliveries of an event, or one delivery.
	EventID string `json:"event_id"`
	// Since selects failed deliveries of mail received since a duration
	// ago ("24h", "90m", "7d") or an RFC 3339 time.
	Since    string `json:"since"`
	Endpoint string `json:"endpoint"`
	DryRun   bool   `json:"dry_run"`
}

// replayResponse is the answer of POST /v1/replay.
type replayResponse struct {
	// Replayed lists the delivery ids put back on the queue (with dry_run:
	// that would be).
	Replayed []string `json:"replayed"`
	Count    int      `json:"count"`
	DryRun   bool     `json:"dry_run"`
	// Truncated: more deliveries matched than one call handles; call again.
	Truncated bool            `json:"truncated"`
	Failed    []replayFailure `json:"failed,omitempty"`
}

type replayFailure struct {
	ID    string `json:"id"`
	Error string `json:"error"`
}

// replayMatching serves POST /v1/replay: every failed delivery matching the
// filter back on the queue, like `mailhook replay`.
func (a *admin) replayMatching(w http.ResponseWriter, r *http.Request) {
	var req replayRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if !req.Failed && req.EventID == "" && req.Since == "" {
		writeError(w, http.StatusBadRequest, `say what to replay: "failed": true, "event_id" or "since"`)
		return
	}
	if req.EventID != "" && !event.ValidID(req.EventID) && !queue.ValidRecordID(req.EventID) {
		writeError(w, http.StatusBadRequest, "event_id: not an event id or delivery id")
		return
	}
	var from time.Time
	if req.Since != "" {
		var err error
		if from, err = queue.ParseSince(req.Since, a.now()); err != nil {
			writeError(w, http.StatusBadRequest, "since: "+err.Error())
			return
		}
	}
	if !validEndpoint(w, req.Endpoint) {
		return
	}

	ctx := r.Context()
	resp := replayResponse{Replayed: []string{}, DryRun: req.DryRun}
	for id, err := range a.b.IDs(ctx, queue.StateFailed, "") {
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if err := ctx.Err(); err != nil {
			return // the client left
		}
		if req.EventID != "" && id != req.EventID && !strings.HasPrefix(id, req.EventID+"-") {
			continue
		}
		var d *queue.Delivery // read when the filter or a dry run needs it
		if !from.IsZero() || req.DryRun {
			var err error
			d, err = a.b.Load(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if queue.Unreadable(err) {
				resp.Failed = append(resp.Failed, replayFailure{ID: id, Error: err.Error()})
				continue
			}
			if err != nil {
				a.fail(w, r, err)
				return
			}
			if d.State != queue.StateFailed || d.ReceivedAt.Before(from) {
				continue
			}
		}
		if len(resp.Replayed)+len(resp.Failed) == a.maxReplay {
			resp.Truncated = true
			break
		}
		if req.DryRun {
			// Say what the replay would: a delivery with nowhere to go
			// is a failure, not a replay.
			if _, err := a.b.ReplayEndpoint(d, req.Endpoint); errors.Is(err, queue.ErrNoEndpoint) {
				resp.Failed = append(resp.Failed, replayFailure{ID: id, Error: noEndpoint})
				continue
			}
			resp.Replayed = append(resp.Replayed, id)
			continue
		}
		if err := a.b.Replay(ctx, id, req.Endpoint); err != nil {
			switch {
			case errors.Is(err, store.ErrNotFound):
				// Replayed by someone else since it was listed.
			case errors.Is(err, queue.ErrNoEndpoint):
				resp.Failed = append(resp.Failed, replayFailure{ID: id, Error: noEndpoint})
			case queue.Unreadable(err):
				resp.Failed = append(resp.Failed, replayFailure{ID: id, Error: err.Error()})
			default:
				ref := a.logFailure(r, err)
				resp.Failed = append(resp.Failed, replayFailure{ID: id, Error: "internal error, ref " + ref})
			}
			continue
		}
		resp.Replayed = append(resp.Replayed, id)
	}
	resp.Count = len(resp.Replayed)
	if req.EventID != "" && resp.Count == 0 && len(resp.Failed) == 0 {
		writeError(w, http.StatusNotFound, "no failed delivery matches event_id "+req.EventID)
		return
	}
	code := http.StatusAccepted
	if req.DryRun {
		code = http.StatusOK
	} else {
		a.log.LogAttrs(ctx, slog.LevelInfo, "admin API: replay",
			slog.Int("count", resp.Count), slog.Int("failed", len(resp.Failed)), slog.Bool("truncated", resp.Truncated),
			slog.Bool("endpoint_override", req.Endpoint != ""), slog.String("remote_addr", r.RemoteAddr))
	}
	writeJSON(w, code, resp)
}

// loadEvent loads the delivery named by {id}: an event id means its first
// delivery, which every message has.
func (a *admin) loadEvent(w http.ResponseWriter, r *http.Request) (*queue.Delivery, bool) {
	id := r.PathValue("id")
	switch {
	case event.ValidID(id):
		id = queue.RecordID(id, 1)
	case queue.ValidRecordID(id):
	default:
		writeError(w, http.StatusBadRequest, "event_id: not an event id or delivery id")
		return nil, false
	}
	return a.load(w, r, id)
}

// load reads a record and answers 404 or 5xx itself when it cannot.
func (a *admin) load(w http.ResponseWriter, r *http.Request, id string) (*queue.Delivery, bool) {
	d, err := a.b.Load(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no delivery "+id)
		return nil, false
	}
	if err != nil {
		a.fail(w, r, err)
		return nil, false
	}
	return d, true
}

// fail answers an error of ours: the client gets a fixed text and a
// reference, the log gets the cause under the same reference.
func (a *admin) fail(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client left; nobody reads the answer
	}
	code, msg := http.StatusInternalServerError, "internal error"
	if errors.Is(err, store.ErrUnavailable) {
		code, msg = http.StatusServiceUnavailable, "store unavailable, try again later"
	}
	ref := a.logFailure(r, err)
	writeJSON(w, code, errorResponse{Error: msg, Ref: ref})
}

func (a *admin) logFailure(r *http.Request, err error) (ref string) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	ref = hex.EncodeToString(b[:])
	a.log.LogAttrs(r.Context(), slog.LevelError, "admin API request failed",
		slog.String("ref", ref), slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	return ref
}

type errorResponse struct {
	Error string `json:"error"`
	// Ref names the log line holding the cause of an internal error.
	Ref string `json:"ref,omitempty"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorResponse{Error: msg})
}

// decodeBody reads an optional JSON object into v; an empty body leaves v
// as it is. It answers 400 itself on bad input.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == io.EOF {
		return true
	}
	if err == nil {
		if dec.Decode(&struct{}{}) != io.EOF {
			err = errors.New("more than one JSON value")
		}
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return false
	}
	return true
}

func validEndpoint(w http.ResponseWriter, endpoint string) bool {
	if endpoint == "" {
		return true
	}
	if err := route.ValidEndpoint(endpoint); err != nil {
		writeError(w, http.StatusBadRequest, "endpoint: "+err.Error())
		return false
	}
	return true
}
