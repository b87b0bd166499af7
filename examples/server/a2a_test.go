package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	a2apg "github.com/talosgo/talos/gateway/a2a/postgres"
	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/internal/testenv"
	"github.com/talosgo/talos/ratchet"
)

// peer is one side of a ratchet conversation kept by an agent: the session,
// its next sender_seq, and the keyring that seals its state for the server.
type peer struct {
	t    *testing.T
	a    *agent
	sess *ratchet.Session
	seq  uint64
	kr   *identity.Keyring
}

func newPeer(t *testing.T, a *agent, s *ratchet.Session) *peer {
	kr := identity.NewKeyring()
	k := make([]byte, 32)
	rand.Read(k)
	if err := kr.Add("k1", k); err != nil {
		t.Fatal(err)
	}
	return &peer{t: t, a: a, sess: s, kr: kr}
}

// stateBlob seals the peer's ratchet state: the server stores it opaque.
func (p *peer) stateBlob(id string) (blob, digest string) {
	p.t.Helper()
	sealed, err := p.sess.MarshalSealed(p.kr, []byte("a2a:"+p.a.did+":"+id))
	if err != nil {
		p.t.Fatal(err)
	}
	sum := sha256.Sum256(sealed)
	return contracts.EncodeBase64URL(sealed), hex.EncodeToString(sum[:])
}

// frame encrypts msg into a new frame of session id.
func (p *peer) frame(id, msg string) *ratchet.Frame {
	p.t.Helper()
	f, err := p.sess.EncryptFrame(id, p.a.did, p.seq, []byte(msg), time.Now())
	if err != nil {
		p.t.Fatal(err)
	}
	p.seq++
	return f
}

func sendBody(f *ratchet.Frame) map[string]any {
	raw, err := f.MarshalJSON()
	if err != nil {
		panic(err)
	}
	return map[string]any{"schema_id": "talos.a2a.frame_send_request", "schema_version": "v1", "frame": json.RawMessage(raw)}
}

type sessionBody struct {
	SessionID   string `json:"session_id"`
	InitiatorID string `json:"initiator_id"`
	ResponderID string `json:"responder_id"`
	State       string `json:"state"`
	Digest      string `json:"ratchet_state_digest"`
	Blob        string `json:"ratchet_state_blob_b64u"`
}

type framesPage struct {
	Frames []json.RawMessage `json:"frames"`
	Next   string            `json:"next_cursor"`
}

type eventsPage struct {
	Events  []json.RawMessage `json:"events"`
	Members []string          `json:"members"`
}

// openSession runs create and accept between alice and bob and returns
// both peers and the session id.
func openSession(t *testing.T, alice, bob *agent) (ap, bp *peer, id string) {
	t.Helper()
	prekey, err := ratchet.GeneratePrekey(bob.w.Signer(), nil)
	if err != nil {
		t.Fatal(err)
	}
	as, err := ratchet.Initiate(prekey.Bundle(), ratchet.Config{})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := ratchet.Accept(prekey, ratchet.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ap, bp = newPeer(t, alice, as), newPeer(t, bob, bs)
	blob, digest := ap.stateBlob("new")
	var s sessionBody
	st := alice.call("POST", "/a2a/sessions", map[string]any{
		"schema_id": "talos.a2a.session_create_request", "schema_version": "v1",
		"responder_id": bob.did, "ratchet_state_blob_b64u": blob, "ratchet_state_digest": digest,
	}, &s)
	if st != http.StatusCreated || s.State != "pending" || s.InitiatorID != alice.did || s.Digest != digest {
		t.Fatalf("create: %d %+v", st, s)
	}
	blob, digest = bp.stateBlob(s.SessionID)
	var acc sessionBody
	st = bob.call("POST", "/a2a/sessions/"+s.SessionID+"/accept", map[string]any{
		"schema_id": "talos.a2a.session_accept_request", "schema_version": "v1",
		"ratchet_state_blob_b64u": blob, "ratchet_state_digest": digest,
	}, &acc)
	if st != http.StatusOK || acc.State != "active" || acc.Digest != digest || acc.Blob != blob {
		t.Fatalf("accept: %d %+v", st, acc)
	}
	return ap, bp, s.SessionID
}

// expectErr checks a contract error answer.
func expectErr(t *testing.T, what string, st int, eb errBody, code string) {
	t.Helper()
	if eb.Code != code || st != contracts.HTTPStatus(contracts.Code(code)) || eb.Message == "" || eb.Retryable == nil {
		t.Fatalf("%s: got %d %+v, want %s (%d)", what, st, eb, code, contracts.HTTPStatus(contracts.Code(code)))
	}
}

func TestA2AMemory(t *testing.T) { runA2A(t, newTestServer(t, testConfig(t))) }

func TestA2APostgres(t *testing.T) {
	cfg := testConfig(t)
	cfg.PostgresURL = testenv.PostgresURL(t)
	cfg.tablePrefix = testenv.Unique(t) + "_"
	ts := newTestServer(t, cfg)
	dropTablesAtEnd(t, cfg.PostgresURL, cfg.tablePrefix)
	if _, ok := ts.core.a2a.store.(*a2apg.Store); !ok {
		t.Fatalf("A2A store is %T, want PostgreSQL", ts.core.a2a.store)
	}
	runA2A(t, ts)
}

func runA2A(t *testing.T, ts *testServer) {
	alice := newAgent(t, ts, "alice", "team-a")
	bob := newAgent(t, ts, "bob", "team-b")
	carol := newAgent(t, ts, "carol", "team-c")
	var eb errBody

	t.Run("sessions", func(t *testing.T) {
		auditBefore := auditSize(t, ts)
		ap, bp, id := openSession(t, alice, bob)
		base := "/a2a/sessions/" + id

		// Non-participants learn nothing: 404 for every route.
		for _, rt := range []struct{ method, path string }{
			{"GET", base}, {"GET", base + "/events"}, {"GET", base + "/frames"}, {"DELETE", base},
		} {
			st := carol.call(rt.method, rt.path, nil, &eb)
			expectErr(t, "carol "+rt.method+" "+rt.path, st, eb, string(contracts.CodeNotFound))
		}
		blob, digest := ap.stateBlob(id)
		st := carol.call("POST", base+"/rotate", map[string]any{"schema_id": "talos.a2a.session_rotate_request", "schema_version": "v1",
			"ratchet_state_blob_b64u": blob, "ratchet_state_digest": digest}, &eb)
		expectErr(t, "carol rotate", st, eb, string(contracts.CodeNotFound))
		f := ap.frame(id, "not yours")
		st = carol.call("POST", base+"/frames", sendBody(f), &eb)
		expectErr(t, "carol sends alice's frame", st, eb, string(contracts.CodeNotFound))
		ap.seq-- // that frame was never stored: reuse its sequence number below
		// Accepting twice is not a transition.
		st = bob.call("POST", base+"/accept", map[string]any{"schema_id": "talos.a2a.session_accept_request", "schema_version": "v1",
			"ratchet_state_blob_b64u": blob, "ratchet_state_digest": digest}, &eb)
		expectErr(t, "second accept", st, eb, string(contracts.CodeStateInvalidTransition))

		// Frames: alice → bob, decrypted on bob's side.
		f0 := ap.frame(id, "hello bob")
		var sent map[string]any
		if st := alice.call("POST", base+"/frames", sendBody(f0), &sent); st != http.StatusCreated || sent["duplicate"] != false {
			t.Fatalf("send: %d %v", st, sent)
		}
		// An identical resend is idempotent.
		if st := alice.call("POST", base+"/frames", sendBody(f0), &sent); st != http.StatusOK || sent["duplicate"] != true {
			t.Fatalf("resend: %d %v", st, sent)
		}
		// A different frame with a used sender_seq is a replay.
		ap.seq = 0
		other := ap.frame(id, "something else")
		st = alice.call("POST", base+"/frames", sendBody(other), &eb)
		expectErr(t, "replayed sender_seq", st, eb, string(contracts.CodeReplayDetected))
		// Bob cannot send a frame that names alice as sender, nor one
		// naming another session.
		st = bob.call("POST", base+"/frames", sendBody(f0), &eb)
		expectErr(t, "wrong sender", st, eb, string(contracts.CodeFrameInvalid))
		wrongSession, err := ratchet.BuildFrame(contracts.NewUUIDv7(), bob.did, 0, mustWire(t, ap, "x"), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		st = bob.call("POST", base+"/frames", sendBody(wrongSession), &eb)
		expectErr(t, "wrong session", st, eb, string(contracts.CodeFrameInvalid))
		// Too far ahead.
		ap.seq = 1 + ratchet.MaxSeqAhead + 10
		far := ap.frame(id, "far")
		st = alice.call("POST", base+"/frames", sendBody(far), &eb)
		expectErr(t, "too far ahead", st, eb, string(contracts.CodeStateSequenceGap))

		// Three more frames from alice (seq 1..3), one from bob.
		ap.seq = 1
		for i := 1; i <= 3; i++ {
			if st := alice.call("POST", base+"/frames", sendBody(ap.frame(id, fmt.Sprintf("msg %d", i))), &sent); st != http.StatusCreated {
				t.Fatalf("send %d: %d %v", i, st, sent)
			}
		}
		// Bob reads page by page with the cursor and decrypts everything.
		var got []string
		cursor := ""
		pages := 0
		for {
			var page framesPage
			path := base + "/frames?limit=2"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			if st := bob.call("GET", path, nil, &page); st != 200 {
				t.Fatalf("list: %d", st)
			}
			pages++
			for _, raw := range page.Frames {
				fr, err := ratchet.ParseFrame(raw)
				if err != nil {
					t.Fatal(err)
				}
				pt, err := bp.sess.DecryptFrame(fr)
				if err != nil {
					t.Fatalf("bob decrypts frame %d: %v", fr.SenderSeq, err)
				}
				got = append(got, string(pt))
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
			if pages > 5 {
				t.Fatal("cursor does not advance")
			}
		}
		if fmt.Sprint(got) != "[hello bob msg 1 msg 2 msg 3]" || pages < 2 {
			t.Fatalf("bob read %q in %d pages", got, pages)
		}
		st = bob.call("GET", base+"/frames?cursor=bogus", nil, &eb)
		expectErr(t, "bad cursor", st, eb, string(contracts.CodeInvalidInput))

		// Bob answers; alice decrypts.
		reply := bp.frame(id, "hello alice")
		if st := bob.call("POST", base+"/frames", sendBody(reply), &sent); st != http.StatusCreated {
			t.Fatalf("reply: %d %v", st, sent)
		}
		var page framesPage
		alice.call("GET", base+"/frames?limit=100", nil, &page)
		last, err := ratchet.ParseFrame(page.Frames[len(page.Frames)-1])
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := ap.sess.DecryptFrame(last); err != nil || string(pt) != "hello alice" {
			t.Fatalf("alice decrypts: %q %v", pt, err)
		}

		// Rotate (either participant) and close.
		blob, digest = ap.stateBlob(id)
		var s sessionBody
		if st := alice.call("POST", base+"/rotate", map[string]any{"schema_id": "talos.a2a.session_rotate_request", "schema_version": "v1",
			"ratchet_state_blob_b64u": blob, "ratchet_state_digest": digest}, &s); st != 200 || s.Digest != digest || s.State != "active" {
			t.Fatalf("rotate: %d %+v", st, s)
		}
		// A blob that does not match its digest is refused.
		st = alice.call("POST", base+"/rotate", map[string]any{"schema_id": "talos.a2a.session_rotate_request", "schema_version": "v1",
			"ratchet_state_blob_b64u": blob, "ratchet_state_digest": hex.EncodeToString(make([]byte, 32))}, &eb)
		expectErr(t, "digest mismatch", st, eb, string(contracts.CodeInvalidInput))
		if st := bob.call("DELETE", base, nil, &s); st != 200 || s.State != "closed" {
			t.Fatalf("close: %d %+v", st, s)
		}
		st = alice.call("DELETE", base, nil, &eb)
		expectErr(t, "close twice", st, eb, string(contracts.CodeStateInvalidTransition))
		st = alice.call("POST", base+"/frames", sendBody(ap.frame(id, "after close")), &eb)
		expectErr(t, "frame after close", st, eb, string(contracts.CodeStateInvalidTransition))

		// The event chain: opened, accepted, rotated, closed.
		var evs eventsPage
		if st := bob.call("GET", base+"/events", nil, &evs); st != 200 {
			t.Fatalf("events: %d", st)
		}
		if _, err := audit.VerifyChain(audit.SessionEventChain, evs.Events); err != nil {
			t.Fatalf("session events do not chain: %v", err)
		}
		var types []string
		for _, raw := range evs.Events {
			if err := contracts.Validate("a2a/session_event", raw); err != nil {
				t.Fatalf("event %s: %v", raw, err)
			}
			var e struct {
				Type, Actor string
			}
			var m map[string]any
			json.Unmarshal(raw, &m)
			e.Type, e.Actor = m["event_type"].(string), m["actor_id"].(string)
			types = append(types, e.Type+"/"+map[string]string{alice.did: "alice", bob.did: "bob"}[e.Actor])
		}
		if fmt.Sprint(types) != "[session_opened/alice session_accepted/bob session_rotated/alice session_closed/bob]" {
			t.Fatalf("events %v", types)
		}
		// Every attested A2A request is audited once, by the Kernel
		// middleware: the successful actions (create, accept, 5 frames
		// stored + 1 duplicate, rotate, close), and the reads and refusals.
		counts := auditedSince(t, ts, auditBefore)
		total := 0
		for k, n := range counts {
			if !strings.HasPrefix(k, opA2A+" ") {
				t.Errorf("%d events %q", n, k)
			}
			total += n
		}
		if counts["a2a POST success"]+counts["a2a DELETE success"] != 10 || uint64(total) != auditSize(t, ts)-auditBefore {
			t.Fatalf("audited %v, want 10 successful actions", counts)
		}
	})

	t.Run("groups", func(t *testing.T) {
		var g struct {
			GroupID string   `json:"group_id"`
			OwnerID string   `json:"owner_id"`
			State   string   `json:"state"`
			Members []string `json:"members"`
		}
		if st := alice.call("POST", "/a2a/groups", map[string]any{"schema_id": "talos.a2a.group_create_request", "schema_version": "v1", "name": "g"}, &g); st != 201 || g.OwnerID != alice.did || g.State != "active" {
			t.Fatalf("create group: %d %+v", st, g)
		}
		base := "/a2a/groups/" + g.GroupID
		add := func(a *agent, member string) (int, errBody) {
			var eb errBody
			st := a.call("POST", base+"/members", map[string]any{"schema_id": "talos.a2a.group_member_add_request", "schema_version": "v1", "member_id": member}, &eb)
			return st, eb
		}
		if st, _ := add(alice, bob.did); st != 200 {
			t.Fatalf("add bob: %d", st)
		}
		if st, _ := add(alice, carol.did); st != 200 {
			t.Fatalf("add carol: %d", st)
		}
		st, eb := add(alice, bob.did)
		expectErr(t, "add twice", st, eb, string(contracts.CodeStateInvalidTransition))
		st, eb = add(bob, "did:key:someone")
		expectErr(t, "non-owner adds", st, eb, string(contracts.CodeDenied))
		if st := alice.call("DELETE", base+"/members/"+carol.did, nil, &g); st != 200 || len(g.Members) != 2 {
			t.Fatalf("remove carol: %d %+v", st, g)
		}
		st = carol.call("GET", base+"/events", nil, &eb)
		expectErr(t, "removed member reads events", st, eb, string(contracts.CodeNotFound))
		st = alice.call("DELETE", base+"/members/"+alice.did, nil, &eb)
		expectErr(t, "owner removes itself", st, eb, string(contracts.CodeStateInvalidTransition))
		if st := alice.call("DELETE", base, nil, &g); st != 200 || g.State != "closed" {
			t.Fatalf("close group: %d %+v", st, g)
		}
		st, eb = add(alice, carol.did)
		expectErr(t, "add after close", st, eb, string(contracts.CodeStateInvalidTransition))

		var evs eventsPage
		if st := bob.call("GET", base+"/events", nil, &evs); st != 200 {
			t.Fatalf("group events: %d", st)
		}
		if _, err := audit.VerifyChain(audit.GroupEventChain, evs.Events); err != nil {
			t.Fatalf("group events do not chain: %v", err)
		}
		var types []string
		for _, raw := range evs.Events {
			if err := contracts.Validate("a2a/group_event", raw); err != nil {
				t.Fatalf("event %s: %v", raw, err)
			}
			var m map[string]any
			json.Unmarshal(raw, &m)
			types = append(types, m["event_type"].(string))
		}
		if fmt.Sprint(types) != "[group_created member_added member_added member_removed group_closed]" {
			t.Fatalf("group events %v", types)
		}
	})
}

// mustWire encrypts msg with p's session and returns the wire envelope.
func mustWire(t *testing.T, p *peer, msg string) []byte {
	t.Helper()
	w, err := p.sess.Encrypt([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestA2ASessionExpiry(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	alice := newAgent(t, ts, "alice", "team-a")
	bob := newAgent(t, ts, "bob", "team-b")
	now := time.Now()
	ts.core.a2a.now = func() time.Time { return now }
	prekey, err := ratchet.GeneratePrekey(bob.w.Signer(), nil)
	if err != nil {
		t.Fatal(err)
	}
	as, err := ratchet.Initiate(prekey.Bundle(), ratchet.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ap := newPeer(t, alice, as)
	blob, digest := ap.stateBlob("new")
	create := func(exp time.Time, v any) int {
		return alice.call("POST", "/a2a/sessions", map[string]any{
			"schema_id": "talos.a2a.session_create_request", "schema_version": "v1", "responder_id": bob.did,
			"ratchet_state_blob_b64u": blob, "ratchet_state_digest": digest, "expires_at": exp.UTC().Format(audit.TimeFormat),
		}, v)
	}
	var eb errBody
	st := create(now.Add(-time.Minute), &eb)
	expectErr(t, "expires_at in the past", st, eb, string(contracts.CodeInvalidInput))
	var s sessionBody
	if st := create(now.Add(time.Minute), &s); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	now = now.Add(2 * time.Minute)
	st = bob.call("POST", "/a2a/sessions/"+s.SessionID+"/accept", map[string]any{
		"schema_id": "talos.a2a.session_accept_request", "schema_version": "v1",
		"ratchet_state_blob_b64u": blob, "ratchet_state_digest": digest,
	}, &eb)
	expectErr(t, "accept after expiry", st, eb, string(contracts.CodeStateInvalidTransition))
	if st := bob.call("DELETE", "/a2a/sessions/"+s.SessionID, nil, nil); st != 200 {
		t.Fatalf("closing an expired session: %d", st)
	}
}
