package capability

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/internal/testenv"
)

type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) now() time.Time   { return time.Unix(c.t.Load(), 0) }
func (c *fakeClock) set(t time.Time)  { c.t.Store(t.Unix()) }
func newClock(t time.Time) *fakeClock { c := &fakeClock{}; c.set(t); return c }

type failingStore struct{ err error }

func (f failingStore) Revoke(context.Context, string, time.Time) error { return f.err }
func (f failingStore) AnyRevoked(context.Context, []string) (bool, error) {
	return false, f.err
}

type fixture struct {
	ws    []*identity.Wallet
	clock *fakeClock
	store *MemRevocationStore
	v     *Verifier
	tok   *Token
	enc   string
}

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{ws: wallets(t, 4), clock: newClock(testNow)}
	f.store = NewMemRevocationStore(f.clock.now)
	cfg := Config{TrustedIssuers: []identity.DID{f.ws[0].DID()}, Revocations: f.store, Now: f.clock.now,
		Replay: identity.NewMemNonceStore(100)}
	if mod != nil {
		mod(&cfg)
	}
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	f.v = v
	f.tok = mustIssue(t, f.ws[0], f.ws[1].DID().String(),
		[]Grant{{Tool: "fs", Actions: []string{"read", "write"}}}, testExp, IssueOptions{})
	f.enc = f.tok.Encode()
	return f
}

func (f *fixture) authorize(t *testing.T, req Request) Decision {
	t.Helper()
	if req.Capability == "" && req.SessionID == "" {
		req.Capability = f.enc
	}
	if req.Principal.IsZero() {
		req.Principal = f.ws[1].DID()
	}
	d, err := f.v.Authorize(context.Background(), req)
	if err != nil && d.Allowed {
		t.Fatalf("error %v with an allowing decision", err)
	}
	return d
}

func wantReason(t *testing.T, d Decision, r ReasonCode) {
	t.Helper()
	if d.Reason != r || d.Allowed != (r == ReasonAllowed) {
		t.Fatalf("decision %+v, want %s", d, r)
	}
}

func TestVerifierBasics(t *testing.T) {
	f := newFixture(t, nil)
	d := f.authorize(t, Request{Tool: "fs", Action: "read", ArgsDigest: "abc"})
	wantReason(t, d, ReasonAllowed)
	if d.CapabilityHash != f.tok.Hash() || d.Issuer != f.ws[0].DID() || d.ChainDepth != 1 || d.Grant.Tool != "fs" || d.ArgsDigest != "abc" {
		t.Fatalf("decision fields %+v", d)
	}
	wantReason(t, f.authorize(t, Request{Tool: "fs", Action: "read"}), ReasonAllowed) // warm
	wantReason(t, f.authorize(t, Request{Tool: "fs", Action: "delete"}), ReasonScopeMismatch)
	wantReason(t, f.authorize(t, Request{Tool: "fs", Action: "read", Principal: f.ws[2].DID()}), ReasonHolderMismatch)
	wantReason(t, f.authorize(t, Request{Capability: "garbage", Tool: "fs", Action: "read"}), ReasonNoCapability)
	wantReason(t, f.authorize(t, Request{SessionID: "nope", Tool: "fs", Action: "read"}), ReasonNoCapability)
	if d.Err() != nil || f.authorize(t, Request{Tool: "fs", Action: "x"}).Err() == nil {
		t.Fatal("Decision.Err")
	}
	// Untrusted issuer.
	other := mustIssue(t, f.ws[2], f.ws[1].DID().String(), []Grant{{Tool: "fs", Actions: []string{"read"}}}, testExp, IssueOptions{})
	wantReason(t, f.authorize(t, Request{Capability: other.Encode(), Tool: "fs", Action: "read"}), ReasonSignatureInvalid)
	// Tampered token: same shape, bad signature.
	tampered := string(f.tok.AppendCanonical(nil))
	tampered = tampered[:len(tampered)-60] + "X" + tampered[len(tampered)-59:]
	if _, err := Parse(tampered); err == nil {
		wantReason(t, f.authorize(t, Request{Capability: tampered, Tool: "fs", Action: "read"}), ReasonSignatureInvalid)
	}
	// Expiry applies to cached entries too.
	f.clock.set(testExp.Add(61 * time.Second))
	wantReason(t, f.authorize(t, Request{Tool: "fs", Action: "read"}), ReasonExpired)
	f.clock.set(testNow)
	// Audience: a token addressed elsewhere is refused by a verifier with none.
	aud := mustIssue(t, f.ws[0], f.ws[1].DID().String(), []Grant{{Tool: "fs", Actions: []string{"read"}}}, testExp, IssueOptions{Audience: "svc"})
	wantReason(t, f.authorize(t, Request{Capability: aud.Encode(), Tool: "fs", Action: "read"}), ReasonAudienceMismatch)
	// Not yet valid.
	later := mustIssue(t, f.ws[0], f.ws[1].DID().String(), []Grant{{Tool: "fs", Actions: []string{"read"}}}, testExp, IssueOptions{NotBefore: testNow.Add(time.Hour)})
	wantReason(t, f.authorize(t, Request{Capability: later.Encode(), Tool: "fs", Action: "read"}), ReasonNotYetValid)
}

func TestVerifierAudience(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Audience = "svc" })
	wantReason(t, f.authorize(t, Request{Tool: "fs", Action: "read"}), ReasonAudienceMismatch)
	aud := mustIssue(t, f.ws[0], f.ws[1].DID().String(), []Grant{{Tool: "fs", Actions: []string{"read"}}}, testExp, IssueOptions{Audience: "svc"})
	wantReason(t, f.authorize(t, Request{Capability: aud.Encode(), Tool: "fs", Action: "read"}), ReasonAllowed)
}

func TestVerifierRevocation(t *testing.T) {
	f := newFixture(t, nil)
	grants := []Grant{{Tool: "fs", Actions: []string{"read"}}}
	c := buildChain(t, f.ws, grants, IssueOptions{})
	enc := c.Encode()
	holder := f.ws[3].DID()
	wantReason(t, f.authorize(t, Request{Capability: enc, Principal: holder, Tool: "fs", Action: "read", SessionID: "s1"}), ReasonAllowed)
	wantReason(t, f.authorize(t, Request{SessionID: "s1", Principal: holder, Tool: "fs", Action: "read"}), ReasonAllowed)
	// Revoking the middle link revokes the leaf, in the cache and the session.
	if err := f.v.Revoke(context.Background(), c[1]); err != nil {
		t.Fatal(err)
	}
	wantReason(t, f.authorize(t, Request{Capability: enc, Principal: holder, Tool: "fs", Action: "read"}), ReasonRevoked)
	wantReason(t, f.authorize(t, Request{SessionID: "s1", Principal: holder, Tool: "fs", Action: "read"}), ReasonNoCapability)
	// The root alone is unaffected; revoking by nonce works too.
	wantReason(t, f.authorize(t, Request{Capability: c[0].Encode(), Principal: f.ws[1].DID(), Tool: "fs", Action: "read"}), ReasonAllowed)
	if err := f.store.Revoke(context.Background(), NonceKey(c[0].Nonce()), time.Time{}); err != nil {
		t.Fatal(err)
	}
	wantReason(t, f.authorize(t, Request{Capability: c[0].Encode(), Principal: f.ws[1].DID(), Tool: "fs", Action: "read"}), ReasonRevoked)
	// Chain delegation rules are enforced by the Verifier too.
	wantReason(t, f.authorize(t, Request{Capability: Chain{c[0], c[2]}.Encode(), Principal: holder, Tool: "fs", Action: "read"}), ReasonDelegationInvalid)
}

func TestVerifierFailsClosed(t *testing.T) {
	boom := errors.New("redis down")
	f := newFixture(t, func(c *Config) { c.Revocations = failingStore{boom} })
	d, err := f.v.Authorize(context.Background(), Request{Capability: f.enc, Principal: f.ws[1].DID(), Tool: "fs", Action: "read"})
	if d.Allowed || d.Reason != ReasonStoreUnavailable || !errors.Is(err, ErrStore) || !errors.Is(err, boom) {
		t.Fatalf("decision %+v, err %v", d, err)
	}
	if d.ErrorCode() != contracts.CodeInternal {
		t.Fatalf("code %s", d.ErrorCode())
	}
	// A nonce without a replay store is misuse, and denies.
	g := newFixture(t, func(c *Config) { c.Replay = nil })
	d, err = g.v.Authorize(context.Background(), Request{Capability: g.enc, Principal: g.ws[1].DID(), Tool: "fs", Action: "read", Nonce: "n1"})
	if d.Allowed || err == nil {
		t.Fatalf("nonce without store: %+v %v", d, err)
	}
	if _, err := NewVerifier(Config{Revocations: f.store}); err == nil {
		t.Fatal("NewVerifier without trusted issuers")
	}
	if _, err := NewVerifier(Config{TrustedIssuers: []identity.DID{f.ws[0].DID()}}); err == nil {
		t.Fatal("NewVerifier without a revocation store")
	}
}

func TestVerifierReplay(t *testing.T) {
	f := newFixture(t, nil)
	wantReason(t, f.authorize(t, Request{Tool: "fs", Action: "read", Nonce: "n1"}), ReasonAllowed)
	wantReason(t, f.authorize(t, Request{Tool: "fs", Action: "read", Nonce: "n1"}), ReasonReplay)
	// A denied request does not burn its nonce.
	wantReason(t, f.authorize(t, Request{Tool: "fs", Action: "delete", Nonce: "n2"}), ReasonScopeMismatch)
	wantReason(t, f.authorize(t, Request{Tool: "fs", Action: "read", Nonce: "n2"}), ReasonAllowed)
}

func TestVerifierRegistry(t *testing.T) {
	reg, err := NewToolRegistry([]ToolEntry{
		{Tool: "fs", Action: "read", Class: ClassRead},
		{Tool: "fs", Action: "write", Class: ClassWrite, RequiresIdempotencyKey: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.Registry = reg })
	wantReason(t, f.authorize(t, Request{Tool: "fs", Action: "write"}), ReasonAllowed)
	wantReason(t, f.authorize(t, Request{Tool: "fs", Action: "exec"}), ReasonUnknownTool)
	ro := mustIssue(t, f.ws[0], f.ws[1].DID().String(), []Grant{{Tool: "fs", Actions: []string{"read", "write"}}}, testExp, IssueOptions{ReadOnly: true})
	wantReason(t, f.authorize(t, Request{Capability: ro.Encode(), Tool: "fs", Action: "read"}), ReasonAllowed)
	wantReason(t, f.authorize(t, Request{Capability: ro.Encode(), Tool: "fs", Action: "write"}), ReasonScopeMismatch)
	// Without a registry nothing says what reads: read-only tokens get nothing.
	g := newFixture(t, nil)
	wantReason(t, g.authorize(t, Request{Capability: ro.Encode(), Tool: "fs", Action: "read"}), ReasonScopeMismatch)
	if _, err := NewToolRegistry([]ToolEntry{{Tool: "a", Action: "b", Class: ClassWrite}}); err == nil {
		t.Fatal("write tool without idempotency key accepted")
	}
}

func TestVerifierRBAC(t *testing.T) {
	var sub string
	f := newFixture(t, func(c *Config) {
		sub = seedWallet(t, 11).DID().String()
		r, err := NewRBAC(RBACConfig{
			Roles:    []Role{{ID: "reader", Permissions: []string{"fs.read"}}},
			Bindings: []Binding{{Principal: sub, Role: "reader", Scope: Scope{Type: "repo", Attributes: map[string]string{"repo": "*"}}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		c.RBAC = r
	})
	scope := Scope{Type: "repo", Attributes: map[string]string{"repo": "talos"}}
	wantReason(t, f.authorize(t, Request{Tool: "fs", Action: "read", Scope: scope}), ReasonAllowed)
	d := f.authorize(t, Request{Tool: "fs", Action: "write", Scope: scope})
	wantReason(t, d, ReasonRBACDenied)
	if d.ErrorCode() != contracts.CodeRBACDenied {
		t.Fatal(d.ErrorCode())
	}
}

func TestVerifierWarmPathAllocs(t *testing.T) {
	f := newFixture(t, nil)
	req := Request{Capability: f.enc, Principal: f.ws[1].DID(), Tool: "fs", Action: "write"}
	ctx := context.Background()
	if d, _ := f.v.Authorize(ctx, req); !d.Allowed {
		t.Fatal(d)
	}
	n := testing.AllocsPerRun(200, func() {
		if d, _ := f.v.Authorize(ctx, req); !d.Allowed {
			t.Fatal(d)
		}
	})
	if n != 0 {
		t.Fatalf("warm Authorize allocates %.1f times", n)
	}
}

func TestDecisionErrorCodes(t *testing.T) {
	for r, want := range map[ReasonCode]string{
		ReasonRevoked: string(contracts.CodeAuthRevoked), ReasonExpired: string(contracts.CodeAuthExpired),
		ReasonSignatureInvalid: string(contracts.CodeAuthInvalidSignature), ReasonRBACDenied: string(contracts.CodeRBACDenied),
		ReasonScopeMismatch: string(contracts.CodeDenied), ReasonNoCapability: string(contracts.CodeInvalidCapability),
		ReasonDelegationInvalid: string(contracts.CodeInvalidCapability), ReasonReplay: string(contracts.CodeReplayDetected),
		ReasonUnknownTool: string(contracts.CodeDenied), ReasonHolderMismatch: string(contracts.CodeDenied),
	} {
		if got := (Decision{Reason: r}).ErrorCode(); string(got) != want {
			t.Errorf("%s → %s, want %s", r, got, want)
		}
	}
	if (Decision{}).Allowed || (Decision{Allowed: true, Reason: ReasonAllowed}).ErrorCode() != "" {
		t.Fatal("zero decision")
	}
}

// TestVerifierConcurrentRevocation authorizes from several goroutines
// while tokens are revoked: once Revoke has returned, no goroutine may be
// allowed that token again (run with -race).
func TestVerifierConcurrentRevocation(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.CacheSize = 32 })
	var toks []*Token
	for i := 0; i < 20; i++ {
		toks = append(toks, mustIssue(t, f.ws[0], f.ws[1].DID().String(), []Grant{{Tool: "fs", Actions: []string{"read"}}}, testExp, IssueOptions{}))
	}
	var revoked [20]atomic.Bool
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		go func(g int) {
			for i := 0; ; i++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				k := (i*7 + g) % len(toks)
				wasRevoked := revoked[k].Load()
				d, err := f.v.Authorize(context.Background(), Request{Capability: toks[k].Encode(), Principal: f.ws[1].DID(), Tool: "fs", Action: "read"})
				if err != nil {
					errs <- err
					return
				}
				if wasRevoked && d.Allowed {
					errs <- errors.New("revoked token allowed")
					return
				}
			}
		}(g)
	}
	for k := range toks {
		time.Sleep(time.Millisecond)
		if err := f.v.Revoke(context.Background(), toks[k]); err != nil {
			t.Fatal(err)
		}
		revoked[k].Store(true)
	}
	close(stop)
	for g := 0; g < 4; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestReplayNonceVectors feeds crypto/replay_nonce.json through the
// Verifier's request-nonce check (the timestamps only differ between the
// cases; a replay is rejected whatever its timestamp).
func TestReplayNonceVectors(t *testing.T) {
	var file struct {
		Tests []struct {
			Nonce     string `json:"nonce"`
			Timestamp int64  `json:"timestamp"`
			Expected  string `json:"expected"`
		} `json:"tests"`
	}
	if err := json.Unmarshal(testenv.ReadContract(t, "test_vectors/crypto/replay_nonce.json"), &file); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, nil)
	for _, v := range file.Tests {
		f.clock.set(time.Unix(v.Timestamp, 0))
		tok := mustIssue(t, f.ws[0], f.ws[1].DID().String(), []Grant{{Tool: "fs", Actions: []string{"read"}}}, time.Unix(v.Timestamp+3600, 0), IssueOptions{})
		d := f.authorize(t, Request{Capability: tok.Encode(), Tool: "fs", Action: "read", Nonce: v.Nonce})
		if got := map[bool]string{true: "accept", false: "reject"}[d.Allowed]; got != v.Expected {
			t.Fatalf("nonce %s at %d: %s (%s), want %s", v.Nonce, v.Timestamp, got, d.Reason, v.Expected)
		}
	}
}

func TestDecisionJSONAndSessions(t *testing.T) {
	b, err := json.Marshal(Decision{})
	if err != nil || string(b) != `{"allowed":false,"reason":"NO_CAPABILITY"}` {
		t.Fatalf("zero decision: %s %v", b, err)
	}
	f := newFixture(t, nil)
	d := f.authorize(t, Request{Capability: f.enc, Tool: "fs", Action: "read", SessionID: "s"})
	wantReason(t, d, ReasonAllowed)
	b, err = json.Marshal(d)
	if err != nil || !json.Valid(b) || !strings.Contains(string(b), `"principal":"did:key:`) {
		t.Fatalf("decision json: %s %v", b, err)
	}
	// Another principal's session of the same id is a different session.
	wantReason(t, f.authorize(t, Request{SessionID: "s", Principal: f.ws[2].DID(), Tool: "fs", Action: "read"}), ReasonNoCapability)
	wantReason(t, f.authorize(t, Request{SessionID: "s", Tool: "fs", Action: "read"}), ReasonAllowed)
	// After Close the Verifier still answers, asking the store.
	f.v.Close()
	wantReason(t, f.authorize(t, Request{Tool: "fs", Action: "read"}), ReasonAllowed)
	if f.v.RevocationFeedLive() {
		t.Fatal("feed live after Close")
	}
}

// revokeAfterAnswer answers AnyRevoked truthfully and then, once armed,
// revokes the first key it was asked about: the revocation lands after the
// Verifier's check and before it binds the session.
type revokeAfterAnswer struct {
	*MemRevocationStore
	armed atomic.Bool
}

func (s *revokeAfterAnswer) AnyRevoked(ctx context.Context, keys []string) (bool, error) {
	revoked, err := s.MemRevocationStore.AnyRevoked(ctx, keys)
	if err == nil && !revoked && s.armed.Swap(false) {
		if err := s.MemRevocationStore.Revoke(ctx, keys[0], time.Time{}); err != nil {
			return false, err
		}
	}
	return revoked, err
}

// Issue 10 item 2: a revocation racing the first (session-binding) request
// must not leave the session alive.
func TestVerifierSessionRevokedDuringBind(t *testing.T) {
	f := newFixture(t, nil)
	store := &revokeAfterAnswer{MemRevocationStore: NewMemRevocationStore(f.clock.now)}
	v, err := NewVerifier(Config{TrustedIssuers: []identity.DID{f.ws[0].DID()}, Revocations: store, Now: f.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	f.v = v
	store.armed.Store(true)
	// The binding request itself raced the revocation and may be allowed...
	wantReason(t, f.authorize(t, Request{Capability: f.enc, Tool: "fs", Action: "read", SessionID: "s"}), ReasonAllowed)
	if store.armed.Load() {
		t.Fatal("the store was not asked")
	}
	// ...but the session it bound must not outlive the revocation.
	wantReason(t, f.authorize(t, Request{SessionID: "s", Tool: "fs", Action: "read"}), ReasonRevoked)
	// Neither may the presented token itself.
	wantReason(t, f.authorize(t, Request{Tool: "fs", Action: "read"}), ReasonRevoked)
}
