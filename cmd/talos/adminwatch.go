package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/talosgo/talos/contracts"
)

// Limits of the Server-Sent Events reader.
const (
	maxSSELine  = 1 << 20 // one line of the stream
	maxSSEEvent = 1 << 20 // one event's data
	maxCursor   = 512     // an event id kept for Last-Event-ID
)

// Reconnection back-off of admin watch.
const (
	watchRetryMin = 500 * time.Millisecond
	watchRetryMax = 30 * time.Second
)

// watchIdle is how long admin watch waits for any byte (an event or the
// server's ": ping" every 15 s) before it treats the connection as dead
// and reconnects. A variable for tests.
var watchIdle = 45 * time.Second

// idleReader cancels its connection when no byte arrives for d.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (i *idleReader) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	if n > 0 {
		i.timer.Reset(i.d)
	}
	return n, err
}

// An sseEvent is one dispatched Server-Sent Event.
type sseEvent struct {
	ID    string // the last id field seen ("" if none yet)
	Event string // the event type ("message" when not given)
	Data  string // the data lines joined with "\n"
}

// sseReader reads Server-Sent Events (the WHATWG event-stream format:
// field lines, comments starting with ':', a blank line dispatching) from
// r, bounding lines and events. It is not safe for concurrent use.
type sseReader struct {
	r      *bufio.Reader
	lastID string
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 64<<10)}
}

func badStream(msg string) error {
	return contracts.New(contracts.CodeInvalidInput, "event stream: "+msg)
}

// readLine returns one line without its terminator (LF or CRLF; a lone
// CR is kept and refused by next). io.EOF only at a clean end.
func (s *sseReader) readLine() (string, error) {
	var b []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		if len(b)+len(chunk) > maxSSELine {
			return "", badStream(fmt.Sprintf("line longer than %d bytes", maxSSELine))
		}
		b = append(b, chunk...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(b) > 0 {
			return "", io.ErrUnexpectedEOF // a torn last line is not an event
		}
		return "", err
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return string(b), nil
}

// next returns the next event. A stream that ends between events returns
// io.EOF; one torn inside an event io.ErrUnexpectedEOF; malformed input a
// *contracts.Error (TALOS_INVALID_INPUT).
func (s *sseReader) next() (sseEvent, error) {
	var data strings.Builder
	ev := sseEvent{}
	hasData := false
	started := false
	for {
		line, err := s.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) && started {
				return sseEvent{}, io.ErrUnexpectedEOF
			}
			return sseEvent{}, err
		}
		if strings.ContainsAny(line, "\r\x00") {
			return sseEvent{}, badStream("control character in a line")
		}
		if line == "" {
			if !hasData {
				// A blank line after comments or ids only: nothing to dispatch.
				ev, started = sseEvent{}, false
				continue
			}
			ev.ID = s.lastID
			if ev.Event == "" {
				ev.Event = "message"
			}
			ev.Data = data.String()
			return ev, nil
		}
		if line[0] == ':' {
			continue // a comment (": ping")
		}
		started = true
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "data":
			if data.Len()+len(value)+1 > maxSSEEvent {
				return sseEvent{}, badStream(fmt.Sprintf("event larger than %d bytes", maxSSEEvent))
			}
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		case "event":
			ev.Event = value
		case "id":
			if len(value) > maxCursor {
				return sseEvent{}, badStream("event id too long")
			}
			s.lastID = value
		case "retry":
			// The server's reconnection hint; admin watch has its own back-off.
		default:
			// Unknown fields are ignored, as the format requires.
		}
	}
}

// watchEvent is what a row of admin watch shows of an audit event.
type watchEvent struct {
	EventID   string `json:"event_id"`
	TS        string `json:"ts"`
	SurfaceID string `json:"surface_id"`
	Outcome   string `json:"outcome"`
	Principal struct {
		PrincipalID string `json:"principal_id"`
		AuthMode    string `json:"auth_mode"`
	} `json:"principal"`
	HTTP struct {
		Method     string `json:"method"`
		Path       string `json:"path"`
		StatusCode int    `json:"status_code"`
	} `json:"http"`
	Meta map[string]any `json:"meta"`
}

const watchHeader = "TIME                     SURFACE            OUTCOME  STATUS  PRINCIPAL                                                 REQUEST / REASON"

func (w *watchEvent) row() string {
	reason := ""
	for _, k := range []string{"decision_reason", "error_code", "via"} {
		if v, ok := w.Meta[k].(string); ok && v != "" {
			reason = v
			break
		}
	}
	req := strings.TrimSpace(w.HTTP.Method + " " + w.HTTP.Path)
	if reason != "" {
		req += " " + reason
	}
	return safeText(fmt.Sprintf("%-24s %-18s %-8s %-7d %-57s %s", w.TS, w.SurfaceID, w.Outcome, w.HTTP.StatusCode, w.Principal.PrincipalID, req))
}

func cmdAdminWatch(e *env, args []string) error {
	const syn = "talos admin watch [--surface S] [--principal DID] [--outcome success|denied|failure] [--after CURSOR] [--json]"
	var surface, principal, outcome, after string
	ac, err := e.adminSetup("admin watch", syn, args, nil, func(fs *flag.FlagSet) {
		fs.StringVar(&surface, "surface", "", "only events of this surface (e.g. kernel.authorize, mcp.gateway, admin)")
		fs.StringVar(&principal, "principal", "", "only events of this principal id")
		fs.StringVar(&outcome, "outcome", "", "only events with this outcome: success, denied or failure")
		fs.StringVar(&after, "after", "", "start strictly after this event cursor (else: events from now on)")
	})
	if err != nil {
		return err
	}
	switch outcome {
	case "", "success", "denied", "failure", "error":
	default:
		return usageError("--outcome must be success, denied or failure")
	}
	if len(after) > maxCursor {
		return usageError("--after is too long")
	}
	ac.a.timeout = 0 // a stream has no overall deadline; the context ends it
	if err := ac.connect(false); err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"surface": surface, "principal_id": principal, "outcome": outcome} {
		if v != "" {
			q.Set(k, v)
		}
	}
	err = e.watch(ac.c, q, after, ac.asJSON)
	if e.ctx.Err() != nil {
		return nil // Ctrl-C: a normal end
	}
	return ac.fail(err)
}

// watch streams events until the context ends or the server refuses,
// reconnecting after dropped connections with Last-Event-ID.
func (e *env) watch(c *adminClient, q url.Values, cursor string, asJSON bool) error {
	ctx := e.ctx
	retry := watchRetryMin
	header := false
	for attempt := 0; ; attempt++ {
		connected, err := e.watchOnce(ctx, c, q, &cursor, asJSON, &header)
		if ctx.Err() != nil {
			return nil
		}
		var ce *cliError
		if errors.As(err, &ce) && ce.code != exitIO {
			return err // refused (bad cursor, no grant): retrying will not help
		}
		if connected {
			retry = watchRetryMin
		}
		msg := "stream ended"
		if err != nil {
			msg = err.Error()
		}
		if cursor != "" {
			fmt.Fprintf(e.stderr, "talos: %s; reconnecting after %s in %v\n", msg, cursor, retry)
		} else {
			fmt.Fprintf(e.stderr, "talos: %s; reconnecting in %v\n", msg, retry)
		}
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		retry = min(2*retry, watchRetryMax)
	}
}

// watchOnce runs one connection. It reports whether the server accepted
// the stream, and updates *cursor with every event seen.
func (e *env) watchOnce(ctx context.Context, c *adminClient, q url.Values, cursor *string, asJSON bool, header *bool) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idle := time.AfterFunc(watchIdle, cancel)
	defer idle.Stop()
	req, err := c.request(ctx, http.MethodGet, "/v1/audit/stream", q, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if *cursor != "" {
		req.Header.Set("Last-Event-ID", *cursor)
	}
	if err := c.authorize(req); err != nil {
		return false, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return false, wrap(exitIO, "cannot reach "+c.base, redactURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := responseError(resp)
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			var ce *cliError
			if errors.As(err, &ce) {
				ce.code = exitIO // retried
			}
		}
		return false, err
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return false, failf(exitFailed, "the server did not answer with an event stream (Content-Type %q)", ct)
	}
	if !*header {
		*header = true
		fmt.Fprintf(e.stderr, "talos: watching %s/v1/audit/stream (Ctrl-C to stop)\n", c.base)
		if !asJSON {
			fmt.Fprintln(e.stdout, watchHeader)
		}
	}
	sr := newSSEReader(&idleReader{r: resp.Body, timer: idle, d: watchIdle})
	for {
		ev, err := sr.next()
		if err != nil {
			if ctx.Err() != nil && e.ctx.Err() == nil {
				return true, failf(exitIO, "no data for %v", watchIdle)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || ctx.Err() != nil {
				return true, wrap(exitIO, "connection lost", err)
			}
			var cerr *contracts.Error
			if errors.As(err, &cerr) {
				return true, wrap(exitFailed, "bad event stream", err)
			}
			return true, wrap(exitIO, "connection lost", err)
		}
		if ev.Event != "audit" {
			continue
		}
		if err := e.printWatchEvent(ev, asJSON); err != nil {
			return true, err
		}
		*cursor = ev.ID
	}
}

// printWatchEvent prints one audit event: a table row, or one JSON line
// {"id":CURSOR,"event":EVENT}.
func (e *env) printWatchEvent(ev sseEvent, asJSON bool) error {
	data := []byte(ev.Data)
	var w watchEvent
	if !json.Valid(data) || json.Unmarshal(data, &w) != nil || w.EventID == "" {
		return wrap(exitFailed, "bad event stream", badStream("an audit event is not an event object"))
	}
	if !asJSON {
		_, err := fmt.Fprintln(e.stdout, w.row())
		return err
	}
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		return wrap(exitFailed, "bad event stream", err)
	}
	line, err := json.Marshal(struct {
		ID    string          `json:"id"`
		Event json.RawMessage `json:"event"`
	}{ev.ID, b.Bytes()})
	if err != nil {
		return wrap(exitIO, "cannot encode output", err)
	}
	_, err = e.stdout.Write(append(line, '\n'))
	return err
}
