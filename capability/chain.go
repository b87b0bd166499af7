package capability

import (
	"crypto"
	"strconv"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// A Chain is a delegation chain, root first: Chain[0] is issued by a trusted
// issuer, and each later token is issued by its parent's subject, grants a
// subset of its parent's grants, expires no later, and names its parent's
// capability hash in metadata.parent. Each link is a valid contract v1.0
// token on its own. A single token is a chain of length 1.
type Chain []*Token

// Leaf returns the last token: the one whose subject holds the chain.
func (c Chain) Leaf() *Token {
	if len(c) == 0 {
		return nil
	}
	return c[len(c)-1]
}

// Encode returns the wire form of the chain: the token's own encoding for a
// chain of one, else base64url of the JSON array of canonical tokens.
func (c Chain) Encode() string {
	if len(c) == 1 {
		return c[0].Encode()
	}
	b := []byte{'['}
	for i, t := range c {
		if i > 0 {
			b = append(b, ',')
		}
		b = t.AppendCanonical(b)
	}
	b = append(b, ']')
	return contracts.EncodeBase64URL(b)
}

// ParseChain reads a chain in any wire form ParseChain or Parse accept: a
// single token (JSON object or its base64url), or a JSON array of token
// objects (raw, or base64url of the array). Every token is read with the
// rules of [Parse]; more than [MaxChainDepth] tokens, or an encoding above
// [MaxChainSize], is an error. Errors are *contracts.Error with code
// TALOS_INVALID_CAPABILITY. ParseChain does not verify anything.
func ParseChain(s string) (Chain, error) {
	if len(s) > MaxChainSize {
		return nil, malformed("chain exceeds " + strconv.Itoa(MaxChainSize) + " bytes")
	}
	raw, err := decodeWire(s, '[')
	if err != nil {
		if t, err2 := Parse(s); err2 == nil {
			return Chain{t}, nil
		}
		return nil, err
	}
	sc := scanner{b: raw}
	if sc.peek() == '{' {
		if len(raw) > MaxTokenSize {
			return nil, malformed("token exceeds " + strconv.Itoa(MaxTokenSize) + " bytes")
		}
		t, ok := parseToken(&sc)
		if !ok {
			return nil, malformed(sc.err)
		}
		if !sc.eof() {
			return nil, malformed("trailing data after token")
		}
		return Chain{t}, nil
	}
	var c Chain
	ok := sc.array(func() bool {
		if len(c) == MaxChainDepth {
			return sc.fail("chain longer than " + strconv.Itoa(MaxChainDepth))
		}
		start := sc.i
		t, ok := parseToken(&sc)
		if !ok {
			return false
		}
		if sc.i-start > MaxTokenSize {
			return sc.fail("token exceeds " + strconv.Itoa(MaxTokenSize) + " bytes")
		}
		c = append(c, t)
		return true
	})
	if !ok {
		return nil, malformed(sc.err)
	}
	if !sc.eof() {
		return nil, malformed("trailing data after chain")
	}
	if len(c) == 0 {
		return nil, malformed("empty chain")
	}
	return c, nil
}

// Delegate issues a token for subject that narrows parent, signed by holder
// (parent's subject's identity key as any crypto.Signer holding an Ed25519
// key: a wallet's [identity.Wallet.Signer], or a key in a KMS or HSM; its
// public key must be parent's subject), every action of grants must be granted by parent for
// the same tool, a grant may drop its ReadOnly limit only if some parent
// grant gives the same tool and action without one (a child may add
// read_only, never drop it), exp must not be after parent's, and the new
// token inherits parent's nbf, audience and read-only flag and names
// parent's hash in metadata.parent. It refuses to widen anything, with a *contracts.Error of
// code TALOS_INVALID_CAPABILITY matching [ErrDelegation]. Delegate does not
// verify parent and does not limit chain depth: [VerifyChain] does.
func Delegate(parent *Token, holder crypto.Signer, subject identity.DID, grants []Grant, exp time.Time) (*Token, error) {
	if parent == nil || holder == nil {
		return nil, delegationErr("nil parent or holder")
	}
	hd, _, err := signerDID(holder, contracts.CodeInvalidCapability)
	if err != nil {
		return nil, err
	}
	if hd != parent.subject {
		return nil, delegationErr("holder is not the parent's subject")
	}
	if err := checkGrants(grants); err != nil {
		return nil, err
	}
	if !grantsSubset(grants, parent.grants, parent.readOnly) {
		return nil, delegationErr("grants widen the parent's scope or drop a grant's read-only limit")
	}
	if exp.Unix() > parent.exp {
		return nil, delegationErr("expiry after the parent's")
	}
	opts := IssueOptions{Audience: parent.aud, ReadOnly: parent.readOnly}
	if parent.hasNbf {
		opts.NotBefore = time.Unix(parent.nbf, 0)
	}
	return issue(holder, subject, grants, exp, opts, parent.hashHex)
}

// grantsSubset reports whether every (tool, action) of child is in parent
// without losing a read-only limit: a pair of a child grant that is not
// read-only (and childReadOnly, the child token's metadata.read_only, is
// false) must be granted by a parent grant that is not read-only either. A
// child may add read_only; it may never drop it. Its work is linear in the
// sizes of both: with large scopes it indexes parent first, so a hostile
// chain cannot make it quadratic.
func grantsSubset(child, parent []Grant, childReadOnly bool) bool {
	pairs := 0
	for _, p := range parent {
		pairs += len(p.Actions)
	}
	if pairs > 32 {
		// writable[pair] is true when some parent grant gives the pair
		// without a read-only limit.
		writable := make(map[[2]string]bool, pairs)
		for _, p := range parent {
			for _, a := range p.Actions {
				k := [2]string{p.Tool, a}
				writable[k] = writable[k] || !p.ReadOnly
			}
		}
		for _, g := range child {
			ro := g.ReadOnly || childReadOnly
			for _, a := range g.Actions {
				w, ok := writable[[2]string{g.Tool, a}]
				if !ok || (!w && !ro) {
					return false
				}
			}
		}
		return true
	}
	for _, g := range child {
		ro := g.ReadOnly || childReadOnly
		for _, a := range g.Actions {
			found := false
			for _, p := range parent {
				if p.Allows(g.Tool, a) && (ro || !p.ReadOnly) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
	}
	return true
}

// A ChainError reports which link of a chain failed and why. Link 0 is the
// root. Err is one of this package's sentinels or a *contracts.Error
// wrapping one.
type ChainError struct {
	Link   int
	Reason ReasonCode
	Err    error
}

// Error describes the failing link and its cause.
func (e *ChainError) Error() string {
	return "capability: chain link " + strconv.Itoa(e.Link) + ": " + e.Err.Error()
}

// Unwrap returns the cause, so errors.Is matches its sentinel and code.
func (e *ChainError) Unwrap() error { return e.Err }

// VerifyChain verifies every link of c at now, with the default skew (60 s)
// and depth limit (8): the root's issuer must be one of trusted; each link's
// signature must verify under its issuer's did:key; each later link must be
// issued by its parent's subject, name the parent's hash in
// metadata.parent, grant a subset of the parent's grants keeping every
// grant's read-only limit, expire no later, keep the parent's audience and
// read-only flag; every link must be within
// its validity window. It does not consult revocation; a [Verifier] does,
// for every link. Errors are *ChainError wrapping a *contracts.Error.
func VerifyChain(c Chain, trusted []identity.DID, now time.Time) error {
	isTrusted := func(d identity.DID) bool {
		for _, t := range trusted {
			if t == d {
				return true
			}
		}
		return false
	}
	return verifyChain(c, isTrusted, now.Unix(), int64(DefaultSkew/time.Second), DefaultMaxChainDepth)
}

func chainErr(link int, reason ReasonCode, err error) error {
	return &ChainError{Link: link, Reason: reason, Err: err}
}

func verifyChain(c Chain, trusted func(identity.DID) bool, now, skew int64, maxDepth int) error {
	if len(c) == 0 {
		return chainErr(0, ReasonNoCapability, malformed("empty chain"))
	}
	if len(c) > maxDepth {
		return chainErr(maxDepth, ReasonDelegationInvalid, delegationErr("chain deeper than "+strconv.Itoa(maxDepth)))
	}
	// Structure first: cheap, and an attacker cannot make us spend
	// signature verifications on a chain that is ill-formed anyway.
	if c[0].parent != "" {
		return chainErr(0, ReasonDelegationInvalid, delegationErr("root names a parent"))
	}
	if !trusted(c[0].issuer) {
		return chainErr(0, ReasonSignatureInvalid, ErrUntrustedIssuer)
	}
	for i := 1; i < len(c); i++ {
		p, t := c[i-1], c[i]
		var msg string
		switch {
		case t.issuer != p.subject:
			msg = "issuer is not the parent's subject"
		case t.parent != p.hashHex:
			msg = "metadata.parent is not the parent's hash"
		case !grantsSubset(t.grants, p.grants, t.readOnly):
			msg = "grants widen the parent's scope or drop a grant's read-only limit"
		case t.exp > p.exp:
			msg = "expiry after the parent's"
		case p.hasNbf && (!t.hasNbf || t.nbf < p.nbf):
			msg = "not-before earlier than the parent's"
		case t.aud != p.aud && p.aud != "":
			msg = "audience differs from the parent's"
		case p.readOnly && !t.readOnly:
			msg = "drops the parent's read-only restriction"
		}
		if msg != "" {
			return chainErr(i, ReasonDelegationInvalid, delegationErr(msg))
		}
	}
	for i, t := range c {
		if !verifySelf(t) {
			return chainErr(i, ReasonSignatureInvalid, ErrSignature)
		}
	}
	for i, t := range c {
		if err := checkTime(t, now, skew); err != nil {
			reason := ReasonExpired
			if err == ErrNotYetValid {
				reason = ReasonNotYetValid
			}
			return chainErr(i, reason, err)
		}
	}
	return nil
}
