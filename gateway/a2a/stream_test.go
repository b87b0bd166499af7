package a2a

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"
)

// sseStream opens an attested streaming call and returns a reader of its
// data payloads.
func (f *fixture) sseStream(t *testing.T, w *identity.Wallet, tok, body string) (<-chan map[string]any, func()) {
	t.Helper()
	return f.sseStreamFrom(t, w, tok, body, "")
}

// sseStreamFrom is sseStream with a Last-Event-ID header (if not empty).
func (f *fixture) sseStreamFrom(t *testing.T, w *identity.Wallet, tok, body, lastEventID string) (<-chan map[string]any, func()) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.srv.URL+"/rpc", bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	req.Header.Set(talos.HeaderCapability, tok)
	s, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	if err := s.Sign(req, "a2a.v1.rpc"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	ch := make(chan map[string]any, 16)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			// Each event is a JSON-RPC response whose result is a
			// stream_response.
			var env struct {
				Result json.RawMessage `json:"result"`
			}
			if err := json.Unmarshal([]byte(data), &env); err != nil {
				t.Errorf("event not JSON: %v", err)
				return
			}
			if err := validate(t, "a2a/v1/stream_response.schema.json", env.Result); err != nil {
				t.Errorf("event off contract: %v\n%s", err, data)
			}
			var m map[string]any
			_ = json.Unmarshal(env.Result, &m)
			ch <- m
		}
	}()
	return ch, func() { resp.Body.Close() }
}

func next(t *testing.T, ch <-chan map[string]any) map[string]any {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("stream ended")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return nil
}

// TestStreamSubscribeCancelPush: one agent sends a streaming message,
// another (granted a2a.list) subscribes, a push destination is configured,
// the task is canceled; both streams see the final canceled state and the
// push is delivered, attested by the server's key and verified.
func TestStreamSubscribeCancelPush(t *testing.T) {
	f := newFixture(t)
	defer close(f.release)

	nonces := identity.NewMemNonceStore(1024)
	pv, err := identity.NewAttestationVerifier(identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: nonces,
		Opcode: func(*http.Request) (string, error) { return PushDestinationOp, nil }})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := pv.Verify(r)
		if err != nil {
			t.Errorf("push attestation: %v", err)
			w.WriteHeader(401)
			return
		}
		if a.DID != f.server.DID() {
			t.Errorf("push signed by %v", a.DID)
		}
		if r.Header.Get("X-A2A-Notification-Token") != "tok-1" {
			t.Error("push token missing")
		}
		var body map[string]map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		st, _ := body["statusUpdate"]["status"].(map[string]any)
		s, _ := st["state"].(string)
		got <- s
	}))
	defer recv.Close()

	a, closeA := f.sseStream(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":"st1","method":"SendStreamingMessage","params":{"message":{"messageId":"m1","role":"user","parts":[{"text":"block"}]}}}`)
	defer closeA()
	first := next(t, a)
	id := first["task"].(map[string]any)["id"].(string)

	// The other agent may not subscribe without a2a.list visibility.
	if _, tc := errCode(f.call(t, f.other, f.tokO, `{"jsonrpc":"2.0","id":"x","method":"GetTask","params":{"id":"`+id+`"}}`)); tc != "NOT_FOUND" {
		t.Fatalf("task visible to a stranger: %q", tc)
	}
	b, closeB := f.sseStream(t, f.other, f.tokL, `{"jsonrpc":"2.0","id":"sub","method":"SubscribeToTask","params":{"id":"`+id+`"}}`)
	defer closeB()
	snap := next(t, b)
	// a2a.list widens reading only: the subscriber cannot cancel the task
	// or point its pushes elsewhere.
	if _, tc := errCode(f.call(t, f.other, f.tokL, `{"jsonrpc":"2.0","id":"x","method":"CancelTask","params":{"id":"`+id+`"}}`)); tc == "" {
		t.Fatal("a non-owner canceled the task")
	}
	if snap["task"].(map[string]any)["id"] != id {
		t.Fatal("subscriber got another task")
	}

	res := f.call(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":"p1","method":"CreateTaskPushNotificationConfig","params":{"taskId":"`+id+`","url":"`+recv.URL+`/push","token":"tok-1","authentication":{"scheme":"Bearer","credentials":"secret"}}}`)
	cfg := res["result"].(map[string]any)
	if cfg["authentication"].(map[string]any)["credentials"] != "[REDACTED]" {
		t.Fatal("credentials answered back")
	}
	if r := f.call(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":"p2","method":"ListTaskPushNotificationConfigs","params":{"taskId":"`+id+`"}}`); len(r["result"].(map[string]any)["configs"].([]any)) != 1 {
		t.Fatalf("list configs: %v", r)
	}

	f.call(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":"c","method":"CancelTask","params":{"id":"`+id+`"}}`)

	for name, ch := range map[string]<-chan map[string]any{"sender": a, "subscriber": b} {
		for {
			ev := next(t, ch)
			su, ok := ev["statusUpdate"].(map[string]any)
			if !ok {
				continue
			}
			if su["status"].(map[string]any)["state"] == string(TaskCanceled) {
				if su["metadata"].(map[string]any)["final"] != true {
					t.Errorf("%s: canceled event not final", name)
				}
				break
			}
		}
		if _, open := <-ch; open {
			t.Errorf("%s: stream still open after the final event", name)
		}
	}
	select {
	case s := <-got:
		if s != string(TaskCanceled) {
			t.Fatalf("push state %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no push delivered")
	}
	f.push.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.deliveries) != 1 || f.deliveries[0].err != nil || f.deliveries[0].status != 200 {
		t.Fatalf("deliveries %+v", f.deliveries)
	}
}

// TestStreamClosedOnRevocation: a subscriber's stream ends once its
// capability is revoked (re-checked every Reauthorize), and a stream with
// no event ends after IdleTimeout.
func TestStreamClosedOnRevocation(t *testing.T) {
	f := newFixture(t, func(c *RPCHandlerConfig) {
		c.Stream = StreamLimits{Reauthorize: 10 * time.Millisecond, IdleTimeout: time.Hour}
	})
	defer close(f.release)
	a, closeA := f.sseStream(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":"s","method":"SendStreamingMessage","params":{"message":{"messageId":"m","role":"user","parts":[{"text":"block"}]}}}`)
	defer closeA()
	id := next(t, a)["task"].(map[string]any)["id"].(string)
	b, closeB := f.sseStream(t, f.other, f.tokL, `{"jsonrpc":"2.0","id":"sub","method":"SubscribeToTask","params":{"id":"`+id+`"}}`)
	defer closeB()
	next(t, b)
	if err := f.revs.Revoke(context.Background(), capability.HashKey(f.hashes[f.tokL]), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, b)
	// The sender's capability is not revoked: its stream is still open and
	// gets the completion.
	f.release <- struct{}{}
	for {
		ev := next(t, a)
		if su, ok := ev["statusUpdate"].(map[string]any); ok && su["status"].(map[string]any)["state"] == string(TaskCompleted) {
			break
		}
	}
}

func TestStreamIdleTimeout(t *testing.T) {
	f := newFixture(t, func(c *RPCHandlerConfig) {
		c.Stream = StreamLimits{IdleTimeout: 20 * time.Millisecond}
	})
	defer close(f.release)
	a, closeA := f.sseStream(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":"s","method":"SendStreamingMessage","params":{"message":{"messageId":"m","role":"user","parts":[{"text":"block"}]}}}`)
	defer closeA()
	next(t, a)
	waitClosed(t, a)
}

// waitClosed drains ch until the stream ends.
func waitClosed(t *testing.T, ch <-chan map[string]any) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("stream still open")
		}
	}
}

// TestSubscribeResume: SubscribeToTask with Last-Event-ID resumes. At the
// current version no snapshot is sent again, only the next change; behind
// it, the current task (holding every missed change); at a final version
// the stream ends empty; an id of another task, from the future or
// malformed, is invalid params.
func TestSubscribeResume(t *testing.T) {
	f := newFixture(t)
	defer close(f.release)
	res := f.call(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":"s","method":"SendMessage","params":{"message":{"messageId":"m1","role":"user","parts":[{"text":"block"}]},"configuration":{"returnImmediately":true}}}`)
	id := res["result"].(map[string]any)["task"].(map[string]any)["id"].(string)
	// Wait until the executor holds the task in working (version 2).
	for i := 0; ; i++ {
		g := f.call(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":"g","method":"GetTask","params":{"id":"`+id+`"}}`)
		if g["result"].(map[string]any)["status"].(map[string]any)["state"] == string(TaskWorking) {
			break
		}
		if i > 1000 {
			t.Fatal("task never working")
		}
		time.Sleep(5 * time.Millisecond)
	}
	sub := `{"jsonrpc":"2.0","id":"r","method":"SubscribeToTask","params":{"id":"` + id + `"}}`
	ch, closeCh := f.sseStreamFrom(t, f.agent, f.tokA, sub, id+":2")
	defer closeCh()
	f.call(t, f.agent, f.tokA, `{"jsonrpc":"2.0","id":"c","method":"CancelTask","params":{"id":"`+id+`"}}`)
	ev := next(t, ch)
	su, ok := ev["statusUpdate"].(map[string]any)
	if !ok || su["status"].(map[string]any)["state"] != string(TaskCanceled) {
		t.Fatalf("first event after resuming at the current version: %v", ev)
	}
	if _, more := <-ch; more {
		t.Fatal("stream went on after the final event")
	}

	behind, closeB := f.sseStreamFrom(t, f.agent, f.tokA, sub, id+":1")
	defer closeB()
	snap := next(t, behind)
	if snap["task"].(map[string]any)["status"].(map[string]any)["state"] != string(TaskCanceled) {
		t.Fatalf("resuming behind: %v", snap)
	}
	if _, more := <-behind; more {
		t.Fatal("stream of a final task went on")
	}
	final, closeF := f.sseStreamFrom(t, f.agent, f.tokA, sub, id+":3")
	defer closeF()
	if ev, more := <-final; more {
		t.Fatalf("resuming at the final version sent %v", ev)
	}

	for _, bad := range []string{"other:1", id + ":4", id + ":x", id + ":01", id + ":0", id} {
		req, _ := http.NewRequest("POST", f.srv.URL+"/rpc", strings.NewReader(sub))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(talos.HeaderCapability, f.tokA)
		req.Header.Set("Last-Event-ID", bad)
		s, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: f.agent.Signer()})
		if err := s.Sign(req, "a2a.v1.rpc"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if code, _ := errCode(m); code != RPCInvalidParams {
			t.Fatalf("Last-Event-ID %q: %v", bad, m)
		}
	}
}
