package auditapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/auditapi"
)

type streamFixture struct {
	t      *testing.T
	store  audit.Store
	log    *audit.Log // the streaming replica's log
	other  *audit.Log // another replica appending to the same store
	stream *auditapi.Stream
	srv    *httptest.Server
}

func newStreamFixture(t *testing.T, store audit.Store, cfg auditapi.StreamConfig) *streamFixture {
	t.Helper()
	f := &streamFixture{t: t, store: store, log: audittest.NewLog(t, store), other: audittest.NewLog(t, store)}
	cfg.Log, cfg.Store = f.log, store
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 5 * time.Millisecond
	}
	var err error
	if f.stream, err = auditapi.NewStream(cfg); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	f.stream.Register(mux, func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer auditor" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			next(w, r)
		}
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	t.Cleanup(f.stream.Close)
	return f
}

// appendN appends events from..to-1, alternating the two replicas.
func (f *streamFixture) appendN(from, to int) {
	f.t.Helper()
	for i := from; i < to; i++ {
		l := f.log
		if i%2 == 1 {
			l = f.other
		}
		if _, err := l.Append(f.t.Context(), audittest.Event(i)); err != nil {
			f.t.Fatal(err)
		}
	}
}

type sseEvent struct {
	id, name string
	data     []byte
}

type sseClient struct {
	t    *testing.T
	resp *http.Response
	rd   *bufio.Reader
	stop context.CancelFunc
}

func (f *streamFixture) open(query string, hdr map[string]string) *sseClient {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/v1/audit/stream"+query, nil)
	req.Header.Set("Authorization", "Bearer auditor")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		cancel()
		f.t.Fatal(err)
	}
	c := &sseClient{t: f.t, resp: resp, rd: bufio.NewReader(resp.Body), stop: cancel}
	f.t.Cleanup(c.close)
	return c
}

func (c *sseClient) close() { c.stop(); c.resp.Body.Close() }

// next reads the next event, skipping comments (pings) unless wantPing.
func (c *sseClient) next(wantPing bool) (sseEvent, bool) {
	c.t.Helper()
	var ev sseEvent
	for {
		line, err := c.rd.ReadString('\n')
		if err != nil {
			return ev, false
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.name != "" {
				return ev, true
			}
		case strings.HasPrefix(line, ":"):
			if wantPing && strings.TrimSpace(line[1:]) == "ping" {
				return sseEvent{name: "ping"}, true
			}
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.name = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data = []byte(line[6:])
		default:
			c.t.Fatalf("unexpected SSE line %q", line)
		}
	}
}

// readN reads n audit events and checks each: its id is the contract cursor
// of its data, which is the stored event.
func (c *sseClient) readN(n int) []sseEvent {
	c.t.Helper()
	out := make([]sseEvent, 0, n)
	for len(out) < n {
		ev, ok := c.next(false)
		if !ok {
			c.t.Fatalf("stream ended after %d events, want %d", len(out), n)
		}
		if ev.name != "audit" {
			c.t.Fatalf("event name %q", ev.name)
		}
		e, err := audit.ParseEvent(ev.data)
		if err != nil {
			c.t.Fatalf("data is not an audit event: %v: %s", err, ev.data)
		}
		ts, _ := time.Parse(audit.TimeFormat, e.TS)
		cur, _ := contracts.EncodeCursor(ts.Unix(), e.EventID)
		if ev.id != cur {
			c.t.Fatalf("id %q, want the event's cursor %q", ev.id, cur)
		}
		out = append(out, ev)
	}
	return out
}

func requestIDs(evs []sseEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		var e struct {
			RequestID string `json:"request_id"`
		}
		json.Unmarshal(ev.data, &e)
		out[i] = e.RequestID
	}
	return out
}

func wantIDs(t *testing.T, evs []sseEvent, nums ...int) {
	t.Helper()
	got := requestIDs(evs)
	want := make([]string, len(nums))
	for i, n := range nums {
		want[i] = "req-" + strconv.Itoa(n)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events %v, want %v", got, want)
	}
}

func TestStream(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("LiveFromEveryReplica", func(t *testing.T) { testStreamLive(t, newStore(t)) })
			t.Run("ResumeNoGapNoDuplicate", func(t *testing.T) { testStreamResume(t, newStore(t)) })
			t.Run("Filters", func(t *testing.T) { testStreamFilters(t, newStore(t)) })
		})
	}
}

func testStreamLive(t *testing.T, store audit.Store) {
	f := newStreamFixture(t, store, auditapi.StreamConfig{})
	f.appendN(0, 2) // before the stream: not sent
	c := f.open("", nil)
	if c.resp.StatusCode != 200 {
		t.Fatalf("status %d", c.resp.StatusCode)
	}
	if ct := c.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	if cc := c.resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q", cc)
	}
	f.appendN(2, 6) // half of them by the other replica
	wantIDs(t, c.readN(4), 2, 3, 4, 5)
}

func testStreamResume(t *testing.T, store audit.Store) {
	f := newStreamFixture(t, store, auditapi.StreamConfig{})
	f.appendN(0, 3)
	// The first page of GET /v1/audit/events gives a cursor to start from:
	// the oldest event's.
	page, err := f.log.Query(t.Context(), audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	first := page.Entries[len(page.Entries)-1].Cursor
	c := f.open("?after="+first, nil)
	evs := c.readN(2)
	wantIDs(t, evs, 1, 2)
	f.appendN(3, 5)
	evs = c.readN(1)
	wantIDs(t, evs, 3)
	c.close()

	// Appended while disconnected, then resumed with Last-Event-ID (which
	// wins over ?after=): 4, 5, 6 exactly once, in log order.
	f.appendN(5, 7)
	c2 := f.open("?after="+first, map[string]string{"Last-Event-ID": evs[0].id})
	wantIDs(t, c2.readN(3), 4, 5, 6)
	f.appendN(7, 8)
	wantIDs(t, c2.readN(1), 7)
}

func testStreamFilters(t *testing.T, store audit.Store) {
	f := newStreamFixture(t, store, auditapi.StreamConfig{})
	// audittest.Event: surface llm.invoke for even i, principal p-(i%3).
	c := f.open("?surface=llm.invoke&principal_id=p-0&outcome=success", nil)
	f.appendN(0, 13)
	wantIDs(t, c.readN(3), 0, 6, 12)
	e := f.open("?surface_id=admin.write&outcome=error", nil)
	g := f.open("?surface_id=admin.write", nil)
	f.appendN(13, 16)
	if _, err := f.log.Append(t.Context(), failed(17)); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, g.readN(3), 13, 15, 17)
	wantIDs(t, e.readN(1), 17)
}

// failed is audittest.Event(i) with outcome failure.
func failed(i int) audit.Event {
	e := audittest.Event(i)
	e.Outcome, e.HTTP.StatusCode = audit.OutcomeFailure, 500
	return e
}

func TestStreamRefusals(t *testing.T) {
	f := newStreamFixture(t, audit.NewMemStore(), auditapi.StreamConfig{})
	f.appendN(0, 2)
	unknown, _ := contracts.EncodeCursor(1, "01890000-0000-7000-8000-000000000001")
	for _, q := range []string{
		"?after=not-a-cursor", "?after=" + unknown, "?outcome=maybe", "?bogus=1",
		"?surface=a&surface=b", "?surface=a&surface_id=b",
	} {
		resp, err := f.srv.Client().Do(mustReq(t, f.srv.URL+"/v1/audit/stream"+q, "Bearer auditor", ""))
		if err != nil {
			t.Fatal(err)
		}
		var e errBody
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != 400 || e.Code != string(contracts.CodeInvalidInput) {
			t.Fatalf("%s: %d %q, want 400 %s", q, resp.StatusCode, e.Code, contracts.CodeInvalidInput)
		}
	}
	resp, err := f.srv.Client().Do(mustReq(t, f.srv.URL+"/v1/audit/stream", "", "garbage"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("bad Last-Event-ID: %d, want 400", resp.StatusCode)
	}
	resp, err = f.srv.Client().Get(f.srv.URL + "/v1/audit/stream")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("without the credential: %d, want 401", resp.StatusCode)
	}
	if f.stream.Subscribers() != 0 {
		t.Fatalf("%d subscribers after refusals", f.stream.Subscribers())
	}
}

func mustReq(t *testing.T, url, auth, lastID string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth == "" {
		auth = "Bearer auditor"
	}
	req.Header.Set("Authorization", auth)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	return req
}

func TestStreamHeartbeat(t *testing.T) {
	f := newStreamFixture(t, audit.NewMemStore(), auditapi.StreamConfig{Heartbeat: 5 * time.Millisecond})
	c := f.open("", nil)
	if ev, ok := c.next(true); !ok || ev.name != "ping" {
		t.Fatalf("got %+v %v, want a ping comment", ev, ok)
	}
	f.appendN(0, 1)
	for {
		ev, ok := c.next(true)
		if !ok {
			t.Fatal("stream ended")
		}
		if ev.name == "audit" {
			break
		}
	}
}

// waitFor polls cond until it holds (the test's own deadline bounds it).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if t.Context().Err() != nil {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestStreamDisconnectCleanup(t *testing.T) {
	f := newStreamFixture(t, audit.NewMemStore(), auditapi.StreamConfig{})
	f.srv.Client().Get(f.srv.URL + "/nothing") // warm the client's connection pool
	base := runtime.NumGoroutine()
	var cs []*sseClient
	for range 3 {
		cs = append(cs, f.open("", nil))
	}
	waitFor(t, "3 subscribers", func() bool { return f.stream.Subscribers() == 3 })
	f.appendN(0, 1)
	for _, c := range cs {
		c.readN(1)
		c.close()
	}
	waitFor(t, "no subscribers after the clients left", func() bool { return f.stream.Subscribers() == 0 })
	f.srv.CloseClientConnections()
	f.srv.Client().CloseIdleConnections()
	// The handlers and the shared poller are gone: back to the goroutines
	// of before (the poller stops with the last subscriber).
	waitFor(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= base })
}

func TestStreamClose(t *testing.T) {
	draining := make(chan struct{})
	f := newStreamFixture(t, audit.NewMemStore(), auditapi.StreamConfig{Draining: func() bool {
		select {
		case <-draining:
			return true
		default:
			return false
		}
	}})
	c := f.open("", nil)
	waitFor(t, "a subscriber", func() bool { return f.stream.Subscribers() == 1 })
	close(draining) // the server begins to shut down
	if _, err := io.ReadAll(c.resp.Body); err != nil {
		t.Fatalf("the stream did not end cleanly: %v", err)
	}
	waitFor(t, "no subscribers", func() bool { return f.stream.Subscribers() == 0 })
	resp, err := f.srv.Client().Do(mustReq(t, f.srv.URL+"/v1/audit/stream", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 500 {
		t.Fatalf("a stream after Close: %d, want a retryable 5xx", resp.StatusCode)
	}
}

func TestStreamMaxSubscribers(t *testing.T) {
	f := newStreamFixture(t, audit.NewMemStore(), auditapi.StreamConfig{MaxSubscribers: 1})
	f.open("", nil)
	waitFor(t, "a subscriber", func() bool { return f.stream.Subscribers() == 1 })
	resp, err := f.srv.Client().Do(mustReq(t, f.srv.URL+"/v1/audit/stream", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	var e errBody
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 429 || e.Code != string(contracts.CodeRateLimited) {
		t.Fatalf("second subscriber: %d %s, want 429 RATE_LIMITED", resp.StatusCode, e.Code)
	}
}

// TestStreamSlowConsumerDisconnected: a client that stops reading is
// disconnected once a write waits longer than WriteTimeout; the stream
// does not buffer for it.
func TestStreamSlowConsumerDisconnected(t *testing.T) {
	f := newStreamFixture(t, audit.NewMemStore(), auditapi.StreamConfig{WriteTimeout: 50 * time.Millisecond})
	c := f.open("", nil) // never read
	waitFor(t, "a subscriber", func() bool { return f.stream.Subscribers() == 1 })
	filler := strings.Repeat("x", audit.MaxMetaString-1)
	// ~32 KB events until the socket buffers are full and the writer
	// times out (a few MB on loopback).
	for i := 0; f.stream.Subscribers() == 1; i++ {
		if t.Context().Err() != nil {
			t.Fatal("the slow consumer was never disconnected")
		}
		e := audittest.Event(i)
		for k := range 31 {
			e.Meta["k"+strconv.Itoa(k)] = filler
		}
		if _, err := f.log.Append(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			time.Sleep(20 * time.Millisecond) // let the writer run into its deadline
		}
	}
	// What the client gets is a truncated stream, not an endless one.
	if _, err := io.Copy(io.Discard, c.resp.Body); err == nil {
		t.Log("the stream ended cleanly after the timeout")
	}
}
