package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/contracts"
)

// streamUpstream is an OpenAI-compatible upstream on loopback that
// answers every request with the script set by the test, recording the
// bodies it receives.
type streamUpstream struct {
	srv      *httptest.Server
	mu       sync.Mutex
	bodies   [][]byte
	script   func(w http.ResponseWriter, r *http.Request, body []byte)
	canceled chan struct{}
}

func newStreamUpstream(t testing.TB) *streamUpstream {
	u := &streamUpstream{canceled: make(chan struct{}, 16)}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.bodies = append(u.bodies, b)
		script := u.script
		u.mu.Unlock()
		script(w, r, b)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *streamUpstream) set(script func(w http.ResponseWriter, r *http.Request, body []byte)) {
	u.mu.Lock()
	u.script = script
	u.mu.Unlock()
}

func (u *streamUpstream) last() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.bodies) == 0 {
		return nil
	}
	return u.bodies[len(u.bodies)-1]
}

// sse writes an event stream: the given content chunks (one choice), then,
// when the request asked for it, a usage chunk, then [DONE] if done.
type sseScript struct {
	contents                  []string
	prompt, completion, total int64 // reported usage; total < 0: none
	done                      bool
	after                     string // raw bytes written after the chunks
	block                     bool   // wait for the client to go after the chunks
}

func (s sseScript) run(u *streamUpstream) func(http.ResponseWriter, *http.Request, []byte) {
	return func(w http.ResponseWriter, r *http.Request, body []byte) {
		var req struct {
			StreamOptions struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
		}
		json.Unmarshal(body, &req)
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		fl := w.(http.Flusher)
		io.WriteString(w, ": keep-alive\n\n")
		fmt.Fprint(w, `data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant"}}]}`+"\n\n")
		for _, c := range s.contents {
			fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", c)
			fl.Flush()
		}
		if s.block {
			<-r.Context().Done()
			u.canceled <- struct{}{}
			return
		}
		io.WriteString(w, s.after)
		if req.StreamOptions.IncludeUsage && s.total >= 0 {
			fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n",
				s.prompt, s.completion, s.total)
		}
		if s.done {
			io.WriteString(w, "data: [DONE]\n\n")
		}
	}
}

// event is one event a client of the proxy received.
type event struct {
	typ  string
	data string
}

// stream posts body and reads the events of the answer (the response, its
// events; a refusal's contract error body in eb).
func (a *agent) stream(body string) (*http.Response, []event, errBody) {
	a.f.t.Helper()
	resp, err := a.client.Post(a.f.srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		a.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb errBody
	if resp.StatusCode != 200 {
		raw, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(raw, &eb); err != nil || resp.StatusCode != contracts.HTTPStatus(contracts.Code(eb.Code)) {
			a.f.t.Fatalf("refusal is not the contract error body: %d %s", resp.StatusCode, raw)
		}
		return resp, nil, eb
	}
	return resp, readEvents(a.f.t, resp.Body, -1), eb
}

// readEvents reads up to n events (all when n < 0).
func readEvents(t testing.TB, r io.Reader, n int) []event {
	t.Helper()
	var out []event
	sc := bufio.NewScanner(r)
	var cur event
	for (n < 0 || len(out) < n) && sc.Scan() {
		ln := sc.Text()
		switch {
		case ln == "":
			if cur.data != "" {
				out = append(out, cur)
			}
			cur = event{}
		case strings.HasPrefix(ln, "event: "):
			cur.typ = strings.TrimPrefix(ln, "event: ")
		case strings.HasPrefix(ln, "data: "):
			cur.data += strings.TrimPrefix(ln, "data: ")
		default:
			t.Fatalf("proxy sent a line that is not an event field: %q", ln)
		}
	}
	return out
}

// streamFixture is a fixture whose upstream streams.
func streamFixture(t *testing.T, opts ...func(*Config)) (*fixture, *streamUpstream) {
	up := newStreamUpstream(t)
	f := newFixture(t, append([]func(*Config){func(c *Config) { c.Upstream = up.srv.URL + "/v1"; c.WriteTimeout = 5 * time.Second }}, opts...)...)
	return f, up
}

func content(t testing.TB, evs []event) (string, int) {
	var b strings.Builder
	n := 0
	for _, e := range evs {
		if e.typ != "" || e.data == "[DONE]" {
			continue
		}
		var c StreamChunk
		if err := json.Unmarshal([]byte(e.data), &c); err != nil {
			t.Fatalf("bad chunk %q", e.data)
		}
		for _, ch := range c.Choices {
			if ch.Delta != nil && ch.Delta.Content != nil {
				b.WriteString(*ch.Delta.Content)
				n++
			}
		}
	}
	return b.String(), n
}

// TestStreamCountedEqualsBilled: a streamed completion is passed through
// chunk by chunk and the budget's spent moves by exactly what was
// streamed (the usage the upstream reports, equal to the count), so
// streamed spend is never left uncounted.
func TestStreamCountedEqualsBilled(t *testing.T) {
	f, up := streamFixture(t)
	alice := f.agent("m")
	f.hardBudget(alice, 1_000_000, budget.ModeHard)
	tokens := []string{"Hel", "lo,", " wo", "rld", "!"}
	up.set(sseScript{contents: tokens, prompt: 9, completion: 5, total: 14, done: true}.run(up))
	body := `{"model":"m","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"<hi> & bye"}]}`
	resp, evs, _ := alice.stream(body)
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	text, n := content(t, evs)
	if text != "Hello, world!" || n != 5 || evs[len(evs)-1].data != "[DONE]" {
		t.Fatalf("client got %q (%d chunks), events %v", text, n, evs)
	}
	for _, e := range evs {
		if strings.Contains(e.data, `"usage":{`) || e.typ == "error" {
			t.Fatalf("client got an event it did not ask for: %+v", e)
		}
	}
	// The forwarded body is the request with stream_options.include_usage
	// set, encoded again from the checked document, and checks the same.
	fwd := up.last()
	var orig, got map[string]any
	json.Unmarshal([]byte(body), &orig)
	if err := json.Unmarshal(fwd, &got); err != nil {
		t.Fatalf("forwarded %q", fwd)
	}
	if so, _ := got["stream_options"].(map[string]any); so["include_usage"] != true {
		t.Fatalf("forwarded %s", fwd)
	}
	delete(got, "stream_options")
	if fmt.Sprint(orig) != fmt.Sprint(got) {
		t.Fatalf("forwarded %s, sent %s", fwd, body)
	}
	if req, mt, ch, err := ParseChatRequest(fwd); err != nil || req.Model != "m" || mt != 50 || ch != 1 {
		t.Fatalf("forwarded body does not check the same: %v", err)
	}
	if s, r := alice.spent(); s != 14*10 || r != 0 {
		t.Fatalf("spent %d reserved %d, want %d streamed", s, r, 14*10)
	}
	if e := f.lastEvent(); e.SurfaceID != SurfaceID || e.Meta[MetaStreamEnd] != StreamDone || e.Meta[MetaUpstream] != "default" {
		t.Fatalf("audit event %+v", e)
	}

	// A client asking for usage itself gets the usage chunk, and its bytes
	// are forwarded as they are.
	body2 := `{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":50,"messages":[]}`
	_, evs, _ = alice.stream(body2)
	if string(up.last()) != body2 {
		t.Fatalf("forwarded %s, sent %s", up.last(), body2)
	}
	if !strings.Contains(evs[len(evs)-2].data, `"usage":{"prompt_tokens":9`) {
		t.Fatalf("usage chunk not passed to a client that asked: %v", evs)
	}
	if s, _ := alice.spent(); s != 2*14*10 {
		t.Fatalf("spent %d after two streams, want %d", s, 2*14*10)
	}
}

// TestStreamCutAtReservation: an upstream streaming past max_tokens under
// a hard budget is cut when the next chunk would exceed the reservation,
// the client gets a BUDGET_EXCEEDED error event, and the charge never
// exceeds the reservation.
func TestStreamCutAtReservation(t *testing.T) {
	f, up := streamFixture(t)
	alice := f.agent("m")
	f.hardBudget(alice, 1_000_000, budget.ModeHard)
	many := make([]string, 40)
	for i := range many {
		many[i] = "tok"
	}
	up.set(sseScript{contents: many, prompt: 1, completion: 40, total: 41, done: true}.run(up))
	body := `{"model":"m","stream":true,"max_tokens":5,"messages":[]}`
	_, evs, _ := alice.stream(body)
	if _, n := content(t, evs); n != 5 {
		t.Fatalf("client got %d content chunks, want 5", n)
	}
	last := evs[len(evs)-1]
	var eb errBody
	if last.typ != "error" || json.Unmarshal([]byte(last.data), &eb) != nil || eb.Code != string(contracts.CodeBudgetExceeded) {
		t.Fatalf("stream not ended with a budget error event: %+v", last)
	}
	worst := int64(len(up.last())) + 5
	if s, r := alice.spent(); s != worst*10 || r != 0 {
		t.Fatalf("spent %d reserved %d, want the reservation %d", s, r, worst*10)
	}
	if e := f.lastEvent(); e.Meta[MetaStreamEnd] != StreamBudgetCut {
		t.Fatalf("audit event of a cut stream %+v", e)
	}
}

// TestStreamUsageLies: an upstream reporting fewer completion tokens than
// it streamed is charged the proxy's count.
func TestStreamUsageLies(t *testing.T) {
	f, up := streamFixture(t)
	alice := f.agent("m")
	f.hardBudget(alice, 1_000_000, budget.ModeHard)
	chunks := make([]string, 10)
	for i := range chunks {
		chunks[i] = "abcdefgh" // 8 bytes: at least 2 tokens
	}
	up.set(sseScript{contents: chunks, prompt: 5, completion: 3, total: 8, done: true}.run(up))
	alice.stream(`{"model":"m","stream":true,"max_tokens":100,"messages":[]}`)
	if s, _ := alice.spent(); s != (5+20)*10 {
		t.Fatalf("spent %d, want %d (5 prompt + 20 counted)", s, (5+20)*10)
	}
}

// TestStreamMalformed: a malformed line from the upstream ends the stream
// with a contract error event; what was streamed before it is charged.
func TestStreamMalformed(t *testing.T) {
	f, up := streamFixture(t)
	alice := f.agent("m")
	f.hardBudget(alice, 1_000_000, budget.ModeHard)
	var spent int64
	for _, bad := range []string{
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}\n\n", // truncated JSON
		"garbage without a field\n\n",
		"data: {\"choices\":[{\"index\":3,\"delta\":{\"content\":\"x\"}}]}\n\n",    // no such choice
		"data: {\"choices\":[],\"Choices\":[{\"index\":0}]}\n\n",                   // case-fold duplicate
		"event: error\ndata: {\"error\":{\"message\":\"sk-secret-upstream\"}}\n\n", // upstream error event
		"data: {\"error\":{\"message\":\"sk-secret-upstream\"}}\n\n",
		"data: {\"choices\":[]}", // ends inside an event
	} {
		up.set(sseScript{contents: []string{"ab", "cd"}, total: -1, after: bad}.run(up))
		body := `{"model":"m","stream":true,"max_tokens":100,"messages":[]}`
		_, evs, _ := alice.stream(body)
		last := evs[len(evs)-1]
		var eb errBody
		if last.typ != "error" || json.Unmarshal([]byte(last.data), &eb) != nil || eb.Code != string(contracts.CodeUpstream5xx) || strings.Contains(last.data, "sk-secret") {
			t.Fatalf("%q: stream ended with %+v", bad, last)
		}
		if _, n := content(t, evs); n != 2 {
			t.Fatalf("%q: %d chunks before the error, want 2", bad, n)
		}
		spent += int64(len(up.last())+2) * 10 // no usage: the request bytes and 2 counted
		if s, r := alice.spent(); s != spent || r != 0 {
			t.Fatalf("%q: spent %d reserved %d, want %d", bad, s, r, spent)
		}
		if e := f.lastEvent(); e.Meta[MetaStreamEnd] != StreamUpstreamError {
			t.Fatalf("%q: audit event %+v", bad, e)
		}
	}
}

// TestStreamClientGone: a client that disconnects mid-stream stops the
// upstream call and is charged what was streamed to it.
func TestStreamClientGone(t *testing.T) {
	f, up := streamFixture(t)
	alice := f.agent("m")
	f.hardBudget(alice, 1_000_000, budget.ModeHard)
	up.set(sseScript{contents: []string{"one", "two", "six"}, block: true}.run(up))
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "POST", f.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"m","stream":true,"max_tokens":100,"messages":[]}`))
	resp, err := alice.client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v", err)
	}
	if evs := readEvents(t, resp.Body, 4); len(evs) != 4 {
		t.Fatalf("got %d events", len(evs))
	}
	cancel()
	resp.Body.Close()
	<-up.canceled // the upstream call stopped with the client
	want := (int64(len(up.last())) + 3) * 10
	for give := time.Now().Add(20 * time.Second); ; {
		// Settled after the handler returns; no fixed wait (the bound only
		// turns a reservation never settled into a failure, not a hang).
		if time.Now().After(give) {
			t.Fatal("the reservation of a stream whose client went away was never settled")
		}
		if s, r := alice.spent(); r == 0 {
			if s != want {
				t.Fatalf("spent %d, want %d (3 chunks streamed)", s, want)
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStreamIdleTimeout: an upstream that stops sending for longer than
// Config.Timeout ends the stream with UPSTREAM_TIMEOUT.
func TestStreamIdleTimeout(t *testing.T) {
	f, up := streamFixture(t)
	alice := f.agent("m")
	up.set(func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	_, evs, _ := alice.stream(`{"model":"m","stream":true,"max_tokens":100,"messages":[]}`)
	var eb errBody
	if last := evs[len(evs)-1]; last.typ != "error" || json.Unmarshal([]byte(last.data), &eb) != nil || eb.Code != string(contracts.CodeUpstreamTimeout) {
		t.Fatalf("idle upstream: %+v", evs)
	}
}

// TestUpstreamErrorsMapped: an upstream's refusal, streamed or not, reaches
// the caller as the contract error body only: the upstream's text (here
// one holding a secret-looking string) never does, and nothing is charged.
func TestUpstreamErrorsMapped(t *testing.T) {
	f, up := streamFixture(t, func(c *Config) { c.Breaker.Failures = 1 << 20 }) // no breaker here
	alice := f.agent("m")
	f.hardBudget(alice, 1_000_000, budget.ModeHard)
	for _, c := range []struct {
		status int
		code   string
	}{
		{400, string(contracts.CodeInvalidInput)}, {404, string(contracts.CodeInvalidInput)}, {422, string(contracts.CodeInvalidInput)},
		{401, string(contracts.CodeUpstream5xx)}, {403, string(contracts.CodeUpstream5xx)}, {429, string(contracts.CodeRateLimited)},
		{408, string(contracts.CodeUpstreamTimeout)}, {500, string(contracts.CodeUpstream5xx)}, {503, string(contracts.CodeUpstream5xx)},
	} {
		up.set(func(w http.ResponseWriter, _ *http.Request, _ []byte) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(c.status)
			io.WriteString(w, `{"error":{"message":"invalid key sk-live-SECRETSECRET for http://10.0.0.7/v1"}}`)
		})
		for _, body := range []string{
			`{"model":"m","max_tokens":10,"messages":[]}`,
			`{"model":"m","stream":true,"max_tokens":10,"messages":[]}`,
		} {
			resp, raw, eb := alice.chat(body)
			if eb.Code != c.code || resp.StatusCode != contracts.HTTPStatus(contracts.Code(c.code)) ||
				bytes.Contains(raw, []byte("SECRET")) || bytes.Contains(raw, []byte("10.0.0.7")) {
				t.Fatalf("upstream %d for %s: %d %s", c.status, body, resp.StatusCode, raw)
			}
		}
	}
	// An answer to a stream request that is not an event stream.
	up.set(func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"choices":[]}`)
	})
	if _, _, eb := alice.chat(`{"model":"m","stream":true,"max_tokens":10,"messages":[]}`); eb.Code != string(contracts.CodeUpstream5xx) {
		t.Fatalf("JSON answer to a stream: %+v", eb)
	}
	if s, r := alice.spent(); s != 0 || r != 0 {
		t.Fatalf("refusals charged: spent %d reserved %d", s, r)
	}
}

func TestStreamOptionsRefused(t *testing.T) {
	f, _ := streamFixture(t)
	alice := f.agent("m")
	for _, body := range []string{
		`{"model":"m","stream":true,"stream_options":"yes","max_tokens":1}`,
		`{"model":"m","stream":true,"stream_options":{"include_usage":true,"Include_Usage":false},"max_tokens":1}`,
	} {
		if _, _, eb := alice.chat(body); eb.Code != string(contracts.CodeInvalidInput) {
			t.Fatalf("%s: %+v", body, eb)
		}
	}
}

// TestStreamOutlivesWriteTimeout: a stream longer than the server's write
// deadline plus Config.Timeout is not cut, because the deadline moves
// with each chunk (a single extension at the start would end it).
func TestStreamOutlivesWriteTimeout(t *testing.T) {
	const writeTimeout, gap, chunks = 300 * time.Millisecond, 150 * time.Millisecond, 12
	f, up := streamFixture(t, func(c *Config) { c.WriteTimeout, c.Timeout = writeTimeout, time.Second })
	srv := httptest.NewUnstartedServer(f.srv.Config.Handler)
	srv.Config.WriteTimeout = writeTimeout
	srv.Start()
	t.Cleanup(srv.Close)
	f.srv = srv
	up.set(func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "text/event-stream")
		for range chunks {
			io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-time.After(gap):
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, "data: [DONE]\n\n")
	})
	alice := f.agent("m")
	_, evs, _ := alice.stream(`{"model":"m","stream":true,"max_tokens":100,"messages":[]}`)
	if _, n := content(t, evs); n != chunks || evs[len(evs)-1].data != "[DONE]" {
		t.Fatalf("a %v stream got %d of %d chunks: %v", chunks*gap, n, chunks, evs)
	}
}

// TestStreamNoStreamUsage: an upstream configured as refusing
// stream_options gets the client's bytes as they are, and the stream is
// charged by the proxy's count.
func TestStreamNoStreamUsage(t *testing.T) {
	f, up := streamFixture(t, func(c *Config) { c.NoStreamUsage = true })
	alice := f.agent("m")
	f.hardBudget(alice, 1_000_000, budget.ModeHard)
	up.set(func(w http.ResponseWriter, r *http.Request, body []byte) {
		if strings.Contains(string(body), "stream_options") {
			http.Error(w, "unknown field stream_options", http.StatusBadRequest)
			return
		}
		sseScript{contents: []string{"abcd", "efgh", "ij"}, total: -1, done: true}.run(up)(w, r, body)
	})
	body := `{"model":"m","stream":true,"max_tokens":100,"messages":[]}`
	_, evs, _ := alice.stream(body)
	if text, _ := content(t, evs); text != "abcdefghij" || string(up.last()) != body {
		t.Fatalf("stream %q, forwarded %s", text, up.last())
	}
	if s, _ := alice.spent(); s != int64(len(body)+3)*10 {
		t.Fatalf("spent %d, want %d", s, (len(body)+3)*10)
	}
}
