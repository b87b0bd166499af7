package auditapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
)

// StreamPattern is the route of the live audit stream.
const StreamPattern = "GET /v1/audit/stream"

// Defaults of [StreamConfig].
const (
	DefaultPollInterval   = 500 * time.Millisecond
	DefaultHeartbeat      = 15 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultMaxSubscribers = 256
	// streamChunk bounds the entries one subscriber holds in memory at a
	// time: the stream reads the store at most this many entries at once.
	streamChunk = 64
)

// StreamConfig configures a [Stream].
type StreamConfig struct {
	// Log is the audit log: it locates the resume cursor (audit.Log.Query).
	// Required.
	Log *audit.Log
	// Store is the Log's store, shared by every replica: the stream polls
	// its Size and reads new entries from it, so events appended on any
	// replica appear. Required.
	Store audit.Store
	// PollInterval is how often the store's size is read while anyone
	// listens. Zero means DefaultPollInterval. [Stream.Wake] polls at once.
	PollInterval time.Duration
	// Heartbeat is the interval of the ": ping" comments. Zero means
	// DefaultHeartbeat (15 s).
	Heartbeat time.Duration
	// WriteTimeout bounds every write to a subscriber: a consumer that does
	// not take an event (or a heartbeat) within it is disconnected, so no
	// subscriber is buffered for. Zero means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// MaxSubscribers bounds the concurrent streams; more are refused with
	// RATE_LIMITED. Zero means DefaultMaxSubscribers.
	MaxSubscribers int
	// Draining, when set, is read at every poll: once it reports true (the
	// server is shutting down) every stream ends, so graceful shutdown is
	// not held up by listeners.
	Draining func() bool
}

// A Stream serves the audit log's new events as Server-Sent Events (GET
// /v1/audit/stream), in log order, from every replica (it reads the shared
// store). It is safe for concurrent use.
//
// Each event is written as
//
//	id: <contract cursor of the event>
//	event: audit
//	data: <the stored event JSON, one line>
//
// and flushed at once. A ": ping" comment is sent every Heartbeat. The
// stream starts after the event named by the Last-Event-ID header (or the
// after query parameter), which must be the cursor of an event of this log
// (400 TALOS_INVALID_INPUT otherwise, before anything is streamed); it then
// continues with the entries appended after that event, so a client that
// reconnects with the last id it saw gets no gap and no duplicate, even when
// replicas' clocks disagree. Without a cursor the stream starts with the
// events appended from now on. Filters (exact match): surface (or
// surface_id), principal_id, outcome (success, denied, failure; error is
// failure).
type Stream struct {
	cfg StreamConfig

	mu       sync.Mutex
	subs     int
	gen      chan struct{} // closed and replaced when the size grows or the stream closes
	size     uint64        // the store size last polled
	pollStop context.CancelFunc
	pollDone chan struct{}
	closed   bool
	done     chan struct{} // closed by Close
	wake     chan struct{}
}

// NewStream returns the stream of cfg.Log.
func NewStream(cfg StreamConfig) (*Stream, error) {
	if cfg.Log == nil || cfg.Store == nil {
		return nil, errors.New("auditapi: StreamConfig.Log and StreamConfig.Store are required")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.MaxSubscribers <= 0 {
		cfg.MaxSubscribers = DefaultMaxSubscribers
	}
	return &Stream{cfg: cfg, gen: make(chan struct{}), done: make(chan struct{}), wake: make(chan struct{}, 1)}, nil
}

// Register mounts GET /v1/audit/stream on mux behind authorize (for the
// admin API, the admin.audit read grant). A nil authorize refuses every
// request (deny by default).
func (s *Stream) Register(mux *http.ServeMux, authorize func(http.HandlerFunc) http.HandlerFunc) {
	if authorize == nil {
		authorize = func(http.HandlerFunc) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				talos.WriteError(w, r, contracts.New(contracts.CodeAuthInvalid, "admin credential required"))
			}
		}
	}
	mux.HandleFunc(StreamPattern, authorize(s.ServeHTTP))
}

// Wake makes the stream read the store's size now instead of at the next
// poll (call it after a local append to cut the latency; events from other
// replicas arrive within PollInterval regardless).
func (s *Stream) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Close ends every stream and refuses new ones (503). It is idempotent.
func (s *Stream) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.done)
}

// Subscribers reports how many streams are open.
func (s *Stream) Subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs
}

// streamFilter is what a stream's query parameters select.
type streamFilter struct {
	surface, principal, outcome string
}

func (f streamFilter) match(k *streamKey) bool {
	return (f.surface == "" || f.surface == k.SurfaceID) &&
		(f.principal == "" || f.principal == k.Principal.PrincipalID) &&
		(f.outcome == "" || f.outcome == k.Outcome)
}

// streamKey is what the stream reads from a stored event.
type streamKey struct {
	EventID   string `json:"event_id"`
	TS        string `json:"ts"`
	SurfaceID string `json:"surface_id"`
	Outcome   string `json:"outcome"`
	Principal struct {
		PrincipalID string `json:"principal_id"`
	} `json:"principal"`
}

// parseStreamQuery reads the filters and the resume cursor of r.
func parseStreamQuery(r *http.Request) (streamFilter, string, error) {
	q := r.URL.Query()
	for name, vs := range q {
		switch name {
		case "surface", "surface_id", "principal_id", "outcome", "after":
			if len(vs) != 1 {
				return streamFilter{}, "", contracts.New(contracts.CodeInvalidInput, "query parameter "+name+" given more than once")
			}
		default:
			return streamFilter{}, "", contracts.New(contracts.CodeInvalidInput, "unknown query parameter "+strconv.Quote(name))
		}
	}
	f := streamFilter{surface: q.Get("surface"), principal: q.Get("principal_id"), outcome: q.Get("outcome")}
	if sid := q.Get("surface_id"); sid != "" {
		if f.surface != "" && f.surface != sid {
			return streamFilter{}, "", contracts.New(contracts.CodeInvalidInput, "surface and surface_id differ")
		}
		f.surface = sid
	}
	switch f.outcome {
	case "", audit.OutcomeSuccess, audit.OutcomeDenied, audit.OutcomeFailure:
	case "error":
		f.outcome = audit.OutcomeFailure
	default:
		return streamFilter{}, "", contracts.New(contracts.CodeInvalidInput, "outcome must be success, denied or failure")
	}
	for _, v := range []string{f.surface, f.principal} {
		if len(v) > 256 {
			return streamFilter{}, "", contracts.New(contracts.CodeInvalidInput, "filter longer than 256 bytes")
		}
	}
	after := q.Get("after")
	if id, ok := r.Header[http.CanonicalHeaderKey("Last-Event-ID")]; ok {
		if len(id) != 1 {
			return streamFilter{}, "", contracts.New(contracts.CodeInvalidInput, "Last-Event-ID given more than once")
		}
		after = id[0]
	}
	return f, after, nil
}

// locate returns the leaf index following the event whose cursor is cur.
func (s *Stream) locate(ctx context.Context, cur string) (uint64, error) {
	c, err := contracts.DecodeCursor(cur)
	if err != nil {
		return 0, err
	}
	ts := time.Unix(c.Timestamp, 0).UTC()
	q := audit.Query{Since: ts, Until: ts.Add(time.Second), Limit: audit.MaxQueryLimit}
	for {
		page, err := s.cfg.Log.Query(ctx, q)
		if err != nil {
			return 0, err
		}
		for _, e := range page.Entries {
			if e.Event.EventID == c.EventID {
				return e.Index + 1, nil
			}
		}
		if page.Next == "" {
			return 0, contracts.New(contracts.CodeInvalidInput, "cursor names no event of this audit log")
		}
		q.After = page.Next
	}
}

// subscribe counts a new subscriber and starts the poller for the first.
func (s *Stream) subscribe() (ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, contracts.New(contracts.CodeTransportError, "the audit stream is shutting down").WithRetryable(true)
	}
	if s.subs >= s.cfg.MaxSubscribers {
		return false, contracts.New(contracts.CodeRateLimited, "too many audit stream subscribers").WithRetryable(true)
	}
	s.subs++
	if s.subs == 1 && s.pollStop == nil {
		ctx, cancel := context.WithCancel(context.Background())
		s.pollStop, s.pollDone = cancel, make(chan struct{})
		go s.poll(ctx, s.pollDone)
	}
	return true, nil
}

// unsubscribe drops a subscriber; the last one stops the poller and waits
// for it, so no goroutine outlives the streams.
func (s *Stream) unsubscribe() {
	s.mu.Lock()
	s.subs--
	var stop context.CancelFunc
	var done chan struct{}
	if s.subs == 0 && s.pollStop != nil {
		stop, done = s.pollStop, s.pollDone
		s.pollStop, s.pollDone = nil, nil
	}
	s.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// poll reads the store's size every PollInterval (and on Wake) and wakes
// the subscribers when it grew.
func (s *Stream) poll(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		if s.cfg.Draining != nil && s.cfg.Draining() {
			s.Close()
		}
		if size, err := s.cfg.Store.Size(ctx); err == nil {
			s.mu.Lock()
			if size > s.size {
				s.size = size
				close(s.gen)
				s.gen = make(chan struct{})
			}
			s.mu.Unlock()
		}
		// A failed read is retried at the next tick: the subscribers keep
		// waiting (they have nothing they could serve).
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// known returns the size last polled and the channel closed when it grows.
func (s *Stream) known() (uint64, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size, s.gen
}

// ServeHTTP streams the audit events; see [Stream].
func (s *Stream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	filter, after, err := parseStreamQuery(r)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	ctx := r.Context()
	var next uint64
	if after != "" {
		if next, err = s.locate(ctx, after); err != nil {
			talos.WriteError(w, r, err)
			return
		}
	} else if next, err = s.cfg.Store.Size(ctx); err != nil {
		talos.WriteError(w, r, contracts.Wrap(contracts.CodeInternal, "audit store unavailable", err).WithRetryable(true))
		return
	}
	if ok, err := s.subscribe(); !ok {
		talos.WriteError(w, r, err)
		return
	}
	defer s.unsubscribe()

	rc := http.NewResponseController(w)
	// The stream outlives the server's request deadlines: no read deadline
	// (a GET has no body; a closed connection still ends the request), and
	// one write deadline per write.
	_ = rc.SetReadDeadline(time.Time{})
	sw := &sseWriter{w: w, rc: rc, timeout: s.cfg.WriteTimeout}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no")
	sw.deadline()
	w.WriteHeader(http.StatusOK)
	if err := sw.flush(); err != nil {
		return
	}

	beat := time.NewTicker(s.cfg.Heartbeat)
	defer beat.Stop()
	var key streamKey
	for {
		size, grown := s.known()
		for next < size {
			end := min(next+streamChunk, size)
			entries, err := s.cfg.Store.ReadEntries(ctx, next, end)
			if err != nil {
				// Nothing more can be served honestly: end the stream; the
				// client resumes from the last id it saw.
				return
			}
			for _, e := range entries {
				next++
				key = streamKey{}
				if json.Unmarshal(e, &key) != nil || !filter.match(&key) {
					continue
				}
				ts, err := time.Parse(audit.TimeFormat, key.TS)
				if err != nil {
					continue
				}
				cur, err := contracts.Cursor{Timestamp: ts.Unix(), EventID: key.EventID}.Encode()
				if err != nil {
					continue
				}
				if err := sw.event(cur, e); err != nil {
					return
				}
			}
			if err := sw.flush(); err != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		case <-grown:
		case <-beat.C:
			if err := sw.ping(); err != nil {
				return
			}
		}
	}
}

// sseWriter writes Server-Sent Events with a deadline per write.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	buf     bytes.Buffer
}

func (sw *sseWriter) deadline() {
	_ = sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout))
}

// event writes one event; data is compacted onto one line.
func (sw *sseWriter) event(id string, data []byte) error {
	sw.buf.Reset()
	sw.buf.WriteString("id: ")
	sw.buf.WriteString(id)
	sw.buf.WriteString("\nevent: audit\ndata: ")
	if bytes.ContainsAny(data, "\r\n") {
		if err := json.Compact(&sw.buf, data); err != nil {
			return nil // not JSON: skipped (stored entries always are)
		}
	} else {
		sw.buf.Write(data)
	}
	sw.buf.WriteString("\n\n")
	sw.deadline()
	_, err := sw.w.Write(sw.buf.Bytes())
	return err
}

func (sw *sseWriter) ping() error {
	sw.deadline()
	if _, err := sw.w.Write([]byte(": ping\n\n")); err != nil {
		return err
	}
	return sw.flush()
}

func (sw *sseWriter) flush() error {
	sw.deadline()
	err := sw.rc.Flush()
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}
