package capability

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

var (
	testNow = time.Unix(1900000000, 0)
	testExp = testNow.Add(time.Hour)
)

// wallets returns n deterministic wallets with seeds 10, 11, ...
func wallets(t testing.TB, n int) []*identity.Wallet {
	ws := make([]*identity.Wallet, n)
	for i := range ws {
		ws[i] = seedWallet(t, byte(10+i))
	}
	return ws
}

func buildChain(t testing.TB, ws []*identity.Wallet, grants []Grant, opts IssueOptions) Chain {
	t.Helper()
	root := mustIssue(t, ws[0], ws[1].DID().String(), grants, testExp, opts)
	c := Chain{root}
	for i := 2; i < len(ws); i++ {
		next, err := Delegate(c.Leaf(), ws[i-1].Signer(), ws[i].DID(), grants, testExp)
		if err != nil {
			t.Fatal(err)
		}
		c = append(c, next)
	}
	return c
}

func TestChainDelegateAndVerify(t *testing.T) {
	ws := wallets(t, 4)
	grants := []Grant{{Tool: "fs", Actions: []string{"read", "write"}}, {Tool: "net", Actions: []string{"get"}}}
	c := buildChain(t, ws, grants, IssueOptions{Audience: "svc"})
	trusted := []identity.DID{ws[0].DID()}
	if err := VerifyChain(c, trusted, testNow); err != nil {
		t.Fatal(err)
	}
	back, err := ParseChain(c.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != 3 || back.Leaf().Hash() != c.Leaf().Hash() || back.Leaf().Audience() != "svc" {
		t.Fatal("chain round trip")
	}
	if err := VerifyChain(back, trusted, testNow); err != nil {
		t.Fatal(err)
	}
	single, err := ParseChain(c[0].Encode())
	if err != nil || len(single) != 1 {
		t.Fatalf("single token as chain: %v", err)
	}
	if err := VerifyChain(c, []identity.DID{ws[1].DID()}, testNow); !errors.Is(err, ErrUntrustedIssuer) {
		t.Fatalf("untrusted root: %v", err)
	}
	var ce *ChainError
	if err := VerifyChain(c, trusted, testExp.Add(2*time.Minute)); !errors.As(err, &ce) || ce.Reason != ReasonExpired {
		t.Fatalf("expired chain: %v", err)
	}
	// Delegate refuses to widen.
	leaf, holder, sub := c.Leaf(), ws[3], ws[0].DID().String()
	for name, g := range map[string][]Grant{
		"new action": {{Tool: "fs", Actions: []string{"delete"}}},
		"new tool":   {{Tool: "db", Actions: []string{"read"}}},
	} {
		if _, err := Delegate(leaf, holder.Signer(), identity.MustParseDID(sub), g, testExp); !errors.Is(err, ErrDelegation) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Delegate(leaf, holder.Signer(), identity.MustParseDID(sub), grants, testExp.Add(time.Second)); !errors.Is(err, ErrDelegation) {
		t.Errorf("later expiry: %v", err)
	}
	if _, err := Delegate(leaf, ws[1].Signer(), identity.MustParseDID(sub), grants, testExp); !errors.Is(err, ErrDelegation) {
		t.Errorf("wrong holder: %v", err)
	}
	// Depth limit.
	long := buildChain(t, wallets(t, MaxChainDepth+2), grants, IssueOptions{})
	if err := VerifyChain(long, []identity.DID{seedWallet(t, 10).DID()}, testNow); !errors.As(err, &ce) || ce.Reason != ReasonDelegationInvalid {
		t.Fatalf("chain of %d: %v", len(long), err)
	}
	if _, err := ParseChain(long.Encode()); !errors.Is(err, contracts.ErrInvalidCapability) {
		t.Fatalf("ParseChain accepted %d links: %v", len(long), err)
	}
}

// TestChainNeverWidens builds random chains, widening one hop at random by
// signing it directly (bypassing Delegate's checks) and checks that no
// widened chain verifies, while every narrowing chain does.
func TestChainNeverWidens(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tools := []string{"fs", "net", "db", "mail"}
	actions := []string{"read", "write", "delete", "list", "exec"}
	randGrants := func() []Grant {
		var gs []Grant
		for _, tool := range tools {
			if r.IntN(2) == 0 {
				continue
			}
			var as []string
			for _, a := range actions {
				if r.IntN(2) == 0 {
					as = append(as, a)
				}
			}
			if len(as) > 0 {
				gs = append(gs, Grant{Tool: tool, Actions: as, ReadOnly: r.IntN(3) == 0})
			}
		}
		if len(gs) == 0 {
			gs = []Grant{{Tool: "fs", Actions: []string{"read"}}}
		}
		return gs
	}
	narrow := func(p []Grant) []Grant {
		var out []Grant
		for _, g := range p {
			var as []string
			for _, a := range g.Actions {
				if r.IntN(3) > 0 {
					as = append(as, a)
				}
			}
			if len(as) > 0 {
				// A child may add a read-only limit, never drop one.
				out = append(out, Grant{Tool: g.Tool, Actions: as, ReadOnly: g.ReadOnly || r.IntN(4) == 0})
			}
		}
		if len(out) == 0 {
			out = []Grant{{Tool: p[0].Tool, Actions: slices.Clone(p[0].Actions[:1]), ReadOnly: p[0].ReadOnly}}
		}
		return out
	}
	ws := wallets(t, MaxChainDepth+1)
	trusted := []identity.DID{ws[0].DID()}
	for iter := 0; iter < 200; iter++ {
		depth := 1 + r.IntN(MaxChainDepth)
		widenAt := -1
		if iter%2 == 0 && depth > 1 {
			widenAt = 1 + r.IntN(depth-1)
		}
		opts := IssueOptions{}
		if r.IntN(2) == 0 {
			opts.Audience = "svc"
		}
		if r.IntN(2) == 0 {
			opts.ReadOnly = true
		}
		root := mustIssue(t, ws[0], ws[1].DID().String(), randGrants(), testExp, opts)
		c := Chain{root}
		for i := 1; i < depth; i++ {
			p := c.Leaf()
			g := narrow(p.grants)
			exp := time.Unix(p.exp-int64(r.IntN(100)), 0)
			o := IssueOptions{Audience: p.aud, ReadOnly: p.readOnly}
			if i == widenAt {
				switch r.IntN(6) {
				case 0: // an action the parent lacks
					for _, a := range actions {
						if !p.Authorize(g[0].Tool, a) {
							g[0].Actions = append(g[0].Actions, a)
							break
						}
					}
					if grantsSubset(g, p.grants, false) {
						exp = time.Unix(p.exp+1, 0)
					}
				case 1: // a tool the parent lacks
					g = append(g, Grant{Tool: "admin", Actions: []string{"read"}})
				case 2:
					exp = time.Unix(p.exp+1+int64(r.IntN(1000)), 0)
				case 3:
					if p.aud != "" {
						o.Audience = "other"
					} else {
						exp = time.Unix(p.exp+1, 0)
					}
				case 4:
					if p.readOnly {
						o.ReadOnly = false
					} else {
						g = append(g, Grant{Tool: "admin", Actions: []string{"write"}})
					}
				case 5: // drop a grant's read-only limit
					for k := range g {
						if g[k].ReadOnly {
							g[k].ReadOnly = false
							break
						}
					}
					if grantsSubset(g, p.grants, o.ReadOnly) {
						// Not a widening (the limit was added at this hop,
						// or the parent also grants the pair writable).
						exp = time.Unix(p.exp+1, 0)
					}
				}
			}
			next, err := issue(ws[i].Signer(), ws[i+1].DID(), g, exp, o, p.hashHex)
			if err != nil {
				t.Fatal(err)
			}
			c = append(c, next)
		}
		err := VerifyChain(c, trusted, testNow)
		if widenAt >= 0 && err == nil {
			t.Fatalf("iteration %d: chain widened at link %d verified", iter, widenAt)
		}
		if widenAt < 0 && err != nil {
			t.Fatalf("iteration %d: narrowing chain rejected: %v", iter, err)
		}
		if widenAt >= 0 {
			var ce *ChainError
			if !errors.As(err, &ce) || ce.Link != widenAt || ce.Reason != ReasonDelegationInvalid {
				t.Fatalf("iteration %d: widened at %d, error %v", iter, widenAt, err)
			}
		}
	}
}

func TestChainRejectsRelinking(t *testing.T) {
	ws := wallets(t, 3)
	grants := []Grant{{Tool: "fs", Actions: []string{"read"}}}
	c := buildChain(t, ws, grants, IssueOptions{})
	other := mustIssue(t, ws[0], ws[1].DID().String(), grants, testExp, IssueOptions{})
	swapped := Chain{other, c[1]} // child names c[0]'s hash, not other's
	if err := VerifyChain(swapped, []identity.DID{ws[0].DID()}, testNow); !errors.Is(err, ErrDelegation) {
		t.Fatalf("relinked chain: %v", err)
	}
	rev := slices.Clone(c)
	slices.Reverse(rev)
	if err := VerifyChain(rev, []identity.DID{ws[0].DID()}, testNow); err == nil {
		t.Fatal("reversed chain verified")
	}
}

// TestLargeScopesStayCheap builds a chain whose links carry very large
// scopes, exercising the indexed path of grantsSubset.
func TestLargeScopesStayCheap(t *testing.T) {
	ws := wallets(t, 3)
	var big []Grant
	for i := 0; i < MaxGrants; i++ {
		g := Grant{Tool: "t" + string(rune('A'+i%26)) + string(rune('a'+i/26))}
		for j := 0; j < MaxActions/2; j++ {
			g.Actions = append(g.Actions, "a"+string(rune('A'+j%26))+string(rune('a'+j/26)))
		}
		big = append(big, g)
	}
	c := buildChain(t, ws, big, IssueOptions{})
	if !grantsSubset(c[1].grants, c[0].grants, false) {
		t.Fatal("equal scopes are a subset")
	}
	wider := append(cloneGrants(big[:1]), Grant{Tool: "zz", Actions: []string{"x"}})
	if grantsSubset(wider, c[0].grants, false) {
		t.Fatal("wider scope accepted")
	}
	if err := VerifyChain(c, []identity.DID{ws[0].DID()}, testNow); err != nil {
		t.Fatal(err)
	}
}
