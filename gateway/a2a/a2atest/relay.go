package a2atest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/a2a"
	"github.com/talosgo/talos/ratchet"
)

// NewRelayStore returns an empty relay store for one subtest.
type NewRelayStore func(t *testing.T) a2a.Store

func session(id string) *a2a.Session {
	return &a2a.Session{SchemaID: "talos.a2a.session", SchemaVersion: "v1", SessionID: id,
		InitiatorID: "did:key:zA", ResponderID: "did:key:zB", State: "pending",
		RatchetStateDigest: "d0", CreatedAt: "2026-03-13T12:00:00.000Z", RatchetStateBlob: []byte("blob-0")}
}

func event(n int) json.RawMessage { return json.RawMessage(fmt.Sprintf(`{"n":%d}`, n)) }

// frame returns a frame of the stream (session, sender) with sender_seq
// seq; variant changes its digest (a different frame at the same seq).
func frame(session, sender string, seq uint64, variant string) (*ratchet.Frame, []byte) {
	f := &ratchet.Frame{SessionID: session, SenderID: sender, SenderSeq: seq,
		FrameDigest: fmt.Sprintf("%s|%s|%d|%s", session, sender, seq, variant)}
	raw, _ := json.Marshal(map[string]any{"session_id": session, "sender_id": sender, "sender_seq": seq, "frame_digest": f.FrameDigest})
	return f, raw
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if string(contracts.CodeOf(err)) != code {
		t.Fatalf("%s: got %v, want %s", what, err, code)
	}
}

// Run is the conformance suite of a2a.Store (the relay's store): every
// implementation runs it against fresh, empty stores.
func Run(t *testing.T, newStore NewRelayStore) {
	ctx := context.Background()
	t.Run("Lists", func(t *testing.T) { testLists(t, newStore(t)) })
	t.Run("AdminList", func(t *testing.T) { testAdminList(t, newStore(t)) })
	t.Run("Sessions", func(t *testing.T) {
		s := newStore(t)
		if err := s.CreateSession(ctx, session("s1"), event(0), "h0"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "duplicate create", s.CreateSession(ctx, session("s1"), event(0), "h0"), string(contracts.CodeInvalidInput))
		got, err := s.GetSession(ctx, "s1")
		if err != nil || got.InitiatorID != "did:key:zA" || got.State != "pending" || string(got.RatchetStateBlob) != "blob-0" || got.CreatedAt == "" {
			t.Fatalf("get: %+v %v", got, err)
		}
		_, err = s.GetSession(ctx, "nope")
		wantCode(t, "missing session", err, string(contracts.CodeNotFound))
		_, err = s.UpdateSession(ctx, "nope", func(*a2a.Session, a2a.ChainHead) (*a2a.Session, json.RawMessage, string, error) {
			t.Fatal("update of a missing session ran")
			return nil, nil, "", nil
		})
		wantCode(t, "update missing", err, string(contracts.CodeNotFound))

		// A failing update writes nothing.
		boom := contracts.New(contracts.CodeStateInvalidTransition, "no")
		if _, err := s.UpdateSession(ctx, "s1", func(x *a2a.Session, h a2a.ChainHead) (*a2a.Session, json.RawMessage, string, error) {
			x.State = "active"
			return nil, nil, "", boom
		}); !errors.Is(err, boom) && contracts.CodeOf(err) != contracts.CodeStateInvalidTransition {
			t.Fatalf("aborted update: %v", err)
		}
		if got, _ := s.GetSession(ctx, "s1"); got.State != "pending" {
			t.Fatalf("aborted update wrote state %q", got.State)
		}
		// Updates see the chain head and count.
		for i := 1; i <= 3; i++ {
			out, err := s.UpdateSession(ctx, "s1", func(x *a2a.Session, h a2a.ChainHead) (*a2a.Session, json.RawMessage, string, error) {
				if h.N != i || h.Head != fmt.Sprintf("h%d", i-1) {
					return nil, nil, "", fmt.Errorf("head %+v at update %d", h, i)
				}
				x.State, x.RatchetStateBlob = "active", []byte(fmt.Sprintf("blob-%d", i))
				return x, event(i), fmt.Sprintf("h%d", i), nil
			})
			if err != nil || out.State != "active" {
				t.Fatalf("update %d: %+v %v", i, out, err)
			}
		}
		if got, _ := s.GetSession(ctx, "s1"); string(got.RatchetStateBlob) != "blob-3" || got.State != "active" {
			t.Fatalf("after updates: %+v", got)
		}
		evs, err := s.Events(ctx, "s1")
		if err != nil || len(evs) != 4 {
			t.Fatalf("events: %d %v", len(evs), err)
		}
		for i, ev := range evs {
			if string(ev) != string(event(i)) {
				t.Fatalf("event %d = %s", i, ev)
			}
		}
		_, err = s.Events(ctx, "nope")
		wantCode(t, "events of a missing object", err, string(contracts.CodeNotFound))
	})

	t.Run("Frames", func(t *testing.T) {
		s := newStore(t)
		f, raw := frame("s1", "a", 0, "x")
		_, err := s.PutFrame(ctx, f, raw)
		wantCode(t, "frame of a missing session", err, string(contracts.CodeNotFound))
		for _, id := range []string{"s1", "s2"} {
			if err := s.CreateSession(ctx, session(id), event(0), "h0"); err != nil {
				t.Fatal(err)
			}
		}
		put := func(session, sender string, seq uint64, variant string) (bool, error) {
			f, raw := frame(session, sender, seq, variant)
			return s.PutFrame(ctx, f, raw)
		}
		for seq := uint64(0); seq < 5; seq++ {
			if dup, err := put("s1", "a", seq, "x"); dup || err != nil {
				t.Fatalf("seq %d: %v %v", seq, dup, err)
			}
		}
		if dup, err := put("s1", "a", 3, "x"); !dup || err != nil {
			t.Fatalf("identical resend: %v %v", dup, err)
		}
		_, err = put("s1", "a", 3, "other")
		wantCode(t, "different frame at a used seq", err, string(contracts.CodeReplayDetected))
		_, err = put("s1", "a", 4+ratchet.MaxSeqAhead+1, "x")
		wantCode(t, "too far ahead", err, string(contracts.CodeStateSequenceGap))
		if _, err := put("s1", "a", 4+ratchet.MaxSeqAhead, "x"); err != nil {
			t.Fatalf("MaxSeqAhead ahead: %v", err)
		}
		if _, err := put("s1", "a", 7, "x"); err != nil {
			t.Fatalf("late gap fill: %v", err)
		}
		// Streams are per (session, sender).
		if _, err := put("s1", "b", 3, "other"); err != nil {
			t.Fatalf("other sender: %v", err)
		}
		if _, err := put("s2", "a", 3, "other"); err != nil {
			t.Fatalf("other session: %v", err)
		}
		_, err = put("s2", "b", ratchet.MaxSeqAhead+1, "x")
		wantCode(t, "new stream too far ahead", err, string(contracts.CodeStateSequenceGap))

		// s1 holds 8 frames (5 + far one + gap fill + sender b) in arrival order.
		var all []json.RawMessage
		after := uint64(0)
		for range 10 {
			page, last, err := s.ListFrames(ctx, "s1", after, 3)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				if last != after {
					t.Fatalf("empty page moved the position %d → %d", after, last)
				}
				break
			}
			if last <= after {
				t.Fatalf("position did not advance: %d → %d", after, last)
			}
			all, after = append(all, page...), last
		}
		if len(all) != 8 {
			t.Fatalf("listed %d frames, want 8", len(all))
		}
		wantSeq := []uint64{0, 1, 2, 3, 4, 4 + ratchet.MaxSeqAhead, 7, 3}
		for i, raw := range all {
			var fr struct {
				SenderSeq uint64 `json:"sender_seq"`
			}
			if err := json.Unmarshal(raw, &fr); err != nil || fr.SenderSeq != wantSeq[i] {
				t.Fatalf("frame %d: %s (want seq %d)", i, raw, wantSeq[i])
			}
		}
		if page, _, err := s.ListFrames(ctx, "nope", 0, 10); err != nil || len(page) != 0 {
			t.Fatalf("frames of a missing session: %d %v", len(page), err)
		}
	})

	t.Run("Groups", func(t *testing.T) {
		s := newStore(t)
		g := &a2a.Group{SchemaID: "talos.a2a.group", SchemaVersion: "v1", GroupID: "g1", OwnerID: "o", State: "active",
			CreatedAt: "2026-03-13T12:00:00.000Z", Members: map[string]bool{"o": true}}
		if err := s.CreateGroup(ctx, g, event(0), "h0"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "duplicate group", s.CreateGroup(ctx, g, event(0), "h0"), string(contracts.CodeInvalidInput))
		for i, m := range []string{"m2", "m1"} {
			if _, err := s.UpdateGroup(ctx, "g1", func(x *a2a.Group, h a2a.ChainHead) (*a2a.Group, json.RawMessage, string, error) {
				if h.N != i+1 {
					return nil, nil, "", fmt.Errorf("head %+v", h)
				}
				x.Members[m] = true
				return x, event(i + 1), fmt.Sprintf("h%d", i+1), nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.GetGroup(ctx, "g1")
		if err != nil || strings.Join(got.SortedMembers(), ",") != "m1,m2,o" || got.OwnerID != "o" {
			t.Fatalf("group: %+v %v", got, err)
		}
		got.Members["intruder"] = true // a returned group is a copy
		if again, _ := s.GetGroup(ctx, "g1"); again.Members["intruder"] {
			t.Fatal("the store shares its member map")
		}
		_, err = s.GetGroup(ctx, "nope")
		wantCode(t, "missing group", err, string(contracts.CodeNotFound))
		_, err = s.GetSession(ctx, "g1")
		wantCode(t, "a group is not a session", err, string(contracts.CodeNotFound))
		if evs, err := s.Events(ctx, "g1"); err != nil || len(evs) != 3 {
			t.Fatalf("group events: %d %v", len(evs), err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t)
		if err := s.CreateSession(ctx, session("s1"), event(0), "h0"); err != nil {
			t.Fatal(err)
		}
		const n = 8
		var wg sync.WaitGroup
		results := make([]error, n)
		dups := make([]bool, n)
		for i := range n {
			wg.Go(func() {
				variant := "x"
				if i%2 == 1 {
					variant = fmt.Sprint("v", i)
				}
				f, raw := frame("s1", "a", 0, variant)
				dups[i], results[i] = s.PutFrame(ctx, f, raw)
			})
		}
		wg.Wait()
		stored := 0
		for i := range n {
			if results[i] == nil && !dups[i] {
				stored++
			} else if results[i] != nil && contracts.CodeOf(results[i]) != contracts.CodeReplayDetected {
				t.Fatalf("racing frame %d: %v", i, results[i])
			}
		}
		if page, _, _ := s.ListFrames(ctx, "s1", 0, 100); stored != 1 || len(page) != 1 {
			t.Fatalf("%d racing frames stored (%d listed), want 1", stored, len(page))
		}
		// Racing updates each see a distinct chain position.
		for range n {
			wg.Go(func() {
				_, err := s.UpdateSession(ctx, "s1", func(x *a2a.Session, h a2a.ChainHead) (*a2a.Session, json.RawMessage, string, error) {
					return x, event(h.N), fmt.Sprintf("h%d", h.N), nil
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		evs, err := s.Events(ctx, "s1")
		if err != nil || len(evs) != n+1 {
			t.Fatalf("events after racing updates: %d %v", len(evs), err)
		}
		for i, ev := range evs {
			if string(ev) != string(event(i)) {
				t.Fatalf("event %d = %s: lost update", i, ev)
			}
		}
	})
}
