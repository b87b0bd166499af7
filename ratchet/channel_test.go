package ratchet_test

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/ratchet"
)

func pair(t testing.TB) (alice, bob *ratchet.Session) {
	t.Helper()
	w, err := identity.GenerateWallet("bob")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ratchet.GeneratePrekey(w.Signer(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if alice, err = ratchet.Initiate(p.Bundle(), ratchet.Config{}); err != nil {
		t.Fatal(err)
	}
	if bob, err = ratchet.Accept(p, ratchet.Config{}); err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

func channels(t testing.TB, ta, tb ratchet.Transport, cfgA, cfgB ratchet.ChannelConfig) (a, b *ratchet.SessionChannel) {
	t.Helper()
	alice, bob := pair(t)
	a, err := ratchet.NewChannel(alice, ta, cfgA)
	if err != nil {
		t.Fatal(err)
	}
	b, err = ratchet.NewChannel(bob, tb, cfgB)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func recv(t testing.TB, c ratchet.Channel) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pt, err := c.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return string(pt)
}

func TestChannelConversation(t *testing.T) {
	ta, tb := ratchet.NewMemPipe()
	a, b := channels(t, ta, tb, ratchet.ChannelConfig{}, ratchet.ChannelConfig{})
	ctx := t.Context()
	for i := range 10 {
		if err := a.Send(ctx, []byte("ping "+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, b); got != "ping "+strconv.Itoa(i) {
			t.Fatalf("got %q", got)
		}
		if err := b.Send(ctx, []byte("pong "+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, a); got != "pong "+strconv.Itoa(i) {
			t.Fatalf("got %q", got)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := b.Receive(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive on an empty transport: %v", err)
	}
	ta.Close()
	if _, err := b.Receive(ctx); !errors.Is(err, ratchet.ErrClosed) {
		t.Fatalf("Receive after Close: %v", err)
	}
}

// chaos wraps a transport: it delivers inbound messages in a random order
// and duplicates some of them, and can inject forgeries.
type chaos struct {
	ratchet.Transport
	mu      sync.Mutex
	r       *mrand.Rand
	pending [][]byte
}

func (c *chaos) Receive(ctx context.Context) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.pending) < 8 {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		msg, err := c.Transport.Receive(cctx)
		cancel()
		if err != nil {
			break
		}
		c.pending = append(c.pending, msg)
		if c.r.IntN(3) == 0 {
			c.pending = append(c.pending, msg) // duplicate
		}
		if c.r.IntN(5) == 0 {
			forged := append([]byte(nil), msg...)
			forged[len(forged)/2] ^= 1
			c.pending = append(c.pending, forged)
		}
	}
	if len(c.pending) == 0 {
		return c.Transport.Receive(ctx)
	}
	i := c.r.IntN(len(c.pending))
	msg := c.pending[i]
	c.pending = append(c.pending[:i], c.pending[i+1:]...)
	return msg, nil
}

func TestChannelOutOfOrderAndDuplicates(t *testing.T) {
	ta, tb := ratchet.NewMemPipe()
	var rejects int
	var mu sync.Mutex
	a, b := channels(t, ta, &chaos{Transport: tb, r: mrand.New(mrand.NewPCG(3, 4))},
		ratchet.ChannelConfig{}, ratchet.ChannelConfig{OnReject: func(error) { mu.Lock(); rejects++; mu.Unlock() }})
	ctx := t.Context()
	const N = 200
	for i := range N {
		if err := a.Send(ctx, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int{}
	inOrder := true
	for i := range N {
		m := recv(t, b)
		got[m]++
		if m != strconv.Itoa(i) {
			inOrder = false
		}
	}
	for i := range N {
		if got[strconv.Itoa(i)] != 1 {
			t.Fatalf("message %d delivered %d times", i, got[strconv.Itoa(i)])
		}
	}
	if inOrder {
		t.Fatal("the chaos transport did not reorder anything")
	}
	// Nothing more is delivered: the remaining queue holds only duplicates and forgeries.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if m, err := b.Receive(cctx); err == nil {
		t.Fatalf("extra delivery %q", m)
	}
	mu.Lock()
	defer mu.Unlock()
	if rejects == 0 {
		t.Fatal("no forgery was reported to OnReject")
	}
	// The reply path still works after all that.
	if err := b.Send(ctx, []byte("done")); err != nil {
		t.Fatal(err)
	}
	if recv(t, a) != "done" {
		t.Fatal("reply lost")
	}
}

func TestChannelPersistsAndDetectsConflicts(t *testing.T) {
	kr := identity.NewKeyring()
	if err := kr.Add("k", make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	kr.SetPrimary("k")
	store := ratchet.NewMemStore()
	ta, tb := ratchet.NewMemPipe()
	a, b := channels(t, ta, tb, ratchet.ChannelConfig{},
		ratchet.ChannelConfig{Store: store, Sealer: kr, ID: "bob"})
	ctx := t.Context()
	a.Send(ctx, []byte("one"))
	if recv(t, b) != "one" {
		t.Fatal()
	}
	// A second process loads bob's session from the store and continues.
	s, v, err := ratchet.LoadSession(ctx, store, kr, "bob", ratchet.Config{})
	if err != nil || v != 1 {
		t.Fatalf("LoadSession: v%d, %v", v, err)
	}
	tc, td := ratchet.NewMemPipe()
	b2, err := ratchet.NewChannel(s, tc, ratchet.ChannelConfig{Store: store, Sealer: kr, ID: "bob", Version: v})
	if err != nil {
		t.Fatal(err)
	}
	a.Send(ctx, []byte("two"))
	wire, err := tb.Receive(ctx) // carry alice's message to the second process

	if err != nil {
		t.Fatal(err)
	}
	td.Send(ctx, wire)
	if recv(t, b2) != "two" {
		t.Fatal("reloaded session did not continue")
	}
	// The first channel's saved version is stale now: its next delivery fails
	// with ErrConflict and is not delivered.
	a.Send(ctx, []byte("three"))
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := b.Receive(cctx); !errors.Is(err, ratchet.ErrConflict) {
		t.Fatalf("stale channel: %v", err)
	}
}
