package a2a

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/talosgo/talos/contracts"
)

// StreamLimits bound SSE streams.
type StreamLimits struct {
	// MaxDuration ends a stream after this long. Default 5 minutes.
	MaxDuration time.Duration
	// IdleTimeout ends a stream with no event for this long. Default 60 s.
	IdleTimeout time.Duration
	// Reauthorize is how often the stream's capability is checked again;
	// a revoked or expired capability closes the stream. Default 5 s.
	Reauthorize time.Duration
}

func (l StreamLimits) withDefaults() StreamLimits {
	if l.MaxDuration <= 0 {
		l.MaxDuration = 5 * time.Minute
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = time.Minute
	}
	if l.Reauthorize <= 0 {
		l.Reauthorize = 5 * time.Second
	}
	return l
}

// An Event is one update of a task, published after it is stored.
type Event struct {
	Task     *Task
	Artifact *Artifact
}

type subscription struct{ ch chan Event }

type hub struct {
	mu   sync.Mutex
	subs map[string]map[*subscription]struct{}
}

func newHub() *hub { return &hub{subs: map[string]map[*subscription]struct{}{}} }

func (h *hub) add(id string, s *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[id] == nil {
		h.subs[id] = map[*subscription]struct{}{}
	}
	h.subs[id][s] = struct{}{}
}

func (h *hub) remove(id string, s *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[id], s)
	if len(h.subs[id]) == 0 {
		delete(h.subs, id)
	}
}

// publish never blocks: a subscriber whose buffer is full misses the
// event but still sees the task's final state (terminal events are sent
// on a fresh read of the store when the stream resumes).
func (h *hub) publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[e.Task.ID] {
		select {
		case s.ch <- e:
		default:
		}
	}
}

// stream serves SendStreamingMessage and SubscribeToTask.
func (h *RPCHandler) stream(ctx context.Context, w http.ResponseWriter, m *Method, c *callCtx) error {
	if !canFlush(w) {
		writeRPC(w, rpcResponse{ID: c.rpcID, Error: domainErr(contracts.New(contracts.CodeStreamingNotSupported, "a2a: streaming not supported"))})
		return nil
	}
	sub := &subscription{ch: make(chan Event, 64)}
	var t *Task
	var err error
	if m.Name == "SendStreamingMessage" {
		t, err = h.send(ctx, c, sub)
	} else {
		var p struct {
			ID               string `json:"id"`
			HistoryLength    *int   `json:"historyLength"`
			IncludeArtifacts *bool  `json:"includeArtifacts"`
		}
		if err = decodeParams(c.params, &p); err == nil && p.ID == "" {
			err = invalidParams()
		}
		if err == nil {
			if t, err = h.visibleTask(ctx, c, p.ID); err == nil {
				h.hub.add(t.ID, sub)
				// Re-read after subscribing: no update is lost in between.
				t, err = h.cfg.Tasks.GetTask(ctx, t.ID)
			}
		}
	}
	if err != nil {
		if rp, ok := err.(*rpcErrorValue); ok {
			writeRPC(w, rpcResponse{ID: c.rpcID, Error: rp.e})
		} else {
			writeRPC(w, rpcResponse{ID: c.rpcID, Error: domainErr(err)})
		}
		return nil
	}
	defer h.hub.remove(t.ID, sub)
	rc := http.NewResponseController(w)
	// The stream may outlive the server's write timeout: its own bounds
	// (MaxDuration, IdleTimeout) apply instead.
	_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.Stream.MaxDuration + 5*time.Second))
	// SubscribeToTask resumes after Last-Event-ID ("<task>:<version>", the
	// SSE id of every event): a client that already saw the current
	// version gets no snapshot again, only what follows; one that saw an
	// older version gets the current task, which holds every change it
	// missed (status and artifacts are cumulative). A malformed id, or one
	// of another task, is invalid params.
	skipSnapshot := false
	if last := c.r.Header.Get("Last-Event-ID"); last != "" && m.Name == "SubscribeToTask" {
		v, ok := parseEventID(last, t.ID)
		if !ok || v > t.Version {
			writeRPC(w, rpcResponse{ID: c.rpcID, Error: protoErr(RPCInvalidParams, "Invalid params: Last-Event-ID")})
			return nil
		}
		skipSnapshot = v == t.Version
		if skipSnapshot && t.Status.State.Terminal() {
			// Nothing follows a final event the client has seen.
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			return nil
		}
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	seen := int64(0)
	emit := func(res any, version int64) bool {
		b, err := json.Marshal(rpcResponse{JSONRPC: "2.0", ID: c.rpcID, Result: res})
		if err != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, "id: %s:%d\nevent: message\ndata: %s\n\n", t.ID, version, b); err != nil {
			return false
		}
		_ = rc.Flush()
		return true
	}
	if !skipSnapshot {
		if !emit(map[string]any{"task": taskWire(t, -1, true)}, t.Version) || t.Status.State.Terminal() {
			return nil
		}
	} else {
		_ = rc.Flush()
	}
	seen = t.Version
	maxT := time.NewTimer(h.cfg.Stream.MaxDuration)
	defer maxT.Stop()
	idle := time.NewTimer(h.cfg.Stream.IdleTimeout)
	defer idle.Stop()
	re := time.NewTicker(h.cfg.Stream.Reauthorize)
	defer re.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-maxT.C:
			return nil
		case <-idle.C:
			return nil
		case <-re.C:
			if d, err := c.authz.Authorize(ctx, c.reauth); err != nil || !d.Allowed {
				return nil
			}
		case e := <-sub.ch:
			if e.Task.Version <= seen {
				continue
			}
			seen = e.Task.Version
			idle.Reset(h.cfg.Stream.IdleTimeout)
			final := e.Task.Status.State.Terminal()
			meta := map[string]any{"eventId": fmt.Sprintf("%s:%d", e.Task.ID, e.Task.Version), "final": final, "version": e.Task.Version}
			var res map[string]any
			if e.Artifact != nil {
				res = map[string]any{"artifactUpdate": map[string]any{"taskId": e.Task.ID, "contextId": e.Task.ContextID, "artifact": e.Artifact, "metadata": meta}}
			} else {
				res = map[string]any{"statusUpdate": map[string]any{"taskId": e.Task.ID, "contextId": e.Task.ContextID, "status": e.Task.Status, "metadata": meta}}
			}
			if !emit(res, e.Task.Version) || final {
				return nil
			}
		}
	}
}

// parseEventID reads an SSE event id "<task>:<version>" of task id.
func parseEventID(s, taskID string) (int64, bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 || s[:i] != taskID {
		return 0, false
	}
	digits := s[i+1:]
	if len(digits) == 0 || len(digits) > 18 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || v < 1 {
		return 0, false
	}
	return v, true
}

// canFlush reports whether w, or a writer it wraps (Unwrap, as
// http.ResponseController follows), can flush.
func canFlush(w http.ResponseWriter) bool {
	for {
		if _, ok := w.(http.Flusher); ok {
			return true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
}
