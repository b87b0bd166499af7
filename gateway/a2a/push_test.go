package a2a

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talosgo/talos/identity"
)

// TestPushRetries: a failing receiver is retried with back-off up to
// Attempts times and the outcome reported once; a receiver that recovers
// gets the update; a destination refused at dial time is not retried.
func TestPushRetries(t *testing.T) {
	w, _ := identity.GenerateWallet("srv")
	s, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
	var hits atomic.Int32
	var failUntil atomic.Int32
	failUntil.Store(2)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) <= failUntil.Load() {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(204)
	}))
	defer recv.Close()
	type outcome struct {
		status int
		err    error
	}
	outs := make(chan outcome, 8)
	newP := func(loopback bool) *PushNotifier {
		p, err := NewPushNotifier(PushNotifierConfig{Signer: s, AllowLoopback: loopback, AllowHTTP: true, Attempts: 3, Backoff: time.Millisecond,
			OnDelivery: func(_ PushConfig, _ string, status int, err error) { outs <- outcome{status, err} }})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tk := &Task{ID: "t1", ContextID: "c", Version: 2, Status: TaskStatus{State: TaskWorking, Timestamp: "2026-03-13T12:00:00Z"}}

	p := newP(true)
	if _, err := p.set(t.Context(), PushConfig{ID: "c1", TaskID: "t1", URL: recv.URL}); err != nil {
		t.Fatal(err)
	}
	p.Notify(t.Context(), tk)
	p.Wait()
	if o := <-outs; o.err != nil || o.status != 204 || hits.Load() != 3 {
		t.Fatalf("recovering receiver: %+v after %d hits", o, hits.Load())
	}

	hits.Store(0)
	failUntil.Store(100)
	p.Notify(t.Context(), tk)
	p.Wait()
	if o := <-outs; o.status != 503 || hits.Load() != 3 {
		t.Fatalf("failing receiver: %+v after %d hits (want 3)", o, hits.Load())
	}

	// Without the loopback allowance the dial is refused, once, unretried.
	hits.Store(0)
	q := newP(false)
	// As if the name had resolved elsewhere when configured:
	if err := q.cfg.Store.PutPushConfig(t.Context(), PushConfig{ID: "c1", TaskID: "t1", URL: recv.URL}, 8); err != nil {
		t.Fatal(err)
	}
	q.Notify(t.Context(), tk)
	q.Wait()
	if o := <-outs; o.err == nil || hits.Load() != 0 {
		t.Fatalf("loopback without allowance: %+v, %d hits", o, hits.Load())
	}
	if _, err := q.set(t.Context(), PushConfig{ID: "c2", TaskID: "t1", URL: recv.URL}); err == nil {
		t.Fatal("loopback destination configured without the allowance")
	}
}
