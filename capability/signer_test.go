package capability_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// kmsKey is a crypto.Signer that is not a wallet: it holds a bare Ed25519
// key, as a KMS or HSM client would behind its API, and counts signatures.
type kmsKey struct {
	priv  ed25519.PrivateKey
	calls atomic.Int64
	// corrupt flips a bit of every signature; fail makes Sign fail.
	corrupt, fail bool
}

func newKMSKey(t *testing.T) *kmsKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &kmsKey{priv: priv}
}

func (k *kmsKey) Public() crypto.PublicKey { return k.priv.Public() }

func (k *kmsKey) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	k.calls.Add(1)
	if k.fail {
		return nil, errors.New("kms: unavailable")
	}
	if opts.HashFunc() != crypto.Hash(0) {
		return nil, errors.New("kms: only pure Ed25519")
	}
	sig := ed25519.Sign(k.priv, msg)
	if k.corrupt {
		sig[0] ^= 1
	}
	return sig, nil
}

func (k *kmsKey) did(t *testing.T) identity.DID {
	t.Helper()
	d, err := identity.DIDFromPublicKey(k.priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var readGrant = []capability.Grant{{Tool: "fs", Actions: []string{"read"}}}

// TestIssueDelegateWithSigner issues and delegates with keys that are not
// wallets, and verifies the chain as any verifier would.
func TestIssueDelegateWithSigner(t *testing.T) {
	root, holder := newKMSKey(t), newKMSKey(t)
	leaf, err := identity.GenerateWallet("leaf")
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	tok, err := capability.Issue(root, holder.did(t), readGrant, exp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Issuer() != root.did(t) || root.calls.Load() != 1 {
		t.Fatalf("issuer %s (want %s), %d signatures", tok.Issuer(), root.did(t), root.calls.Load())
	}
	if err := capability.Verify(tok, root.priv.Public().(ed25519.PublicKey), time.Now()); err != nil {
		t.Fatal(err)
	}
	child, err := capability.Delegate(tok, holder, leaf.DID(), readGrant, exp)
	if err != nil {
		t.Fatal(err)
	}
	if err := capability.VerifyChain(capability.Chain{tok, child}, []identity.DID{root.did(t)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	// A wallet's Signer works the same, and options still apply.
	w, err := identity.GenerateWallet("op")
	if err != nil {
		t.Fatal(err)
	}
	ro, err := capability.Issue(w.Signer(), leaf.DID(), readGrant, exp, &capability.IssueOptions{Audience: "svc", ReadOnly: true})
	if err != nil || ro.Issuer() != w.DID() || ro.Audience() != "svc" || !ro.ReadOnly() {
		t.Fatalf("Issue with options: %v", err)
	}
	// Only the holder of the parent's subject key may delegate.
	if _, err := capability.Delegate(tok, root, leaf.DID(), readGrant, exp); !errors.Is(err, capability.ErrDelegation) {
		t.Fatalf("Delegate by a non-holder: %v", err)
	}
}

// TestIssueRejectsBadSigners: nil, non-Ed25519, failing and lying signers
// and a zero subject are errors, and nothing is issued.
func TestIssueRejectsBadSigners(t *testing.T) {
	holder := newKMSKey(t)
	exp := time.Now().Add(time.Hour)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	failing, lying := newKMSKey(t), newKMSKey(t)
	failing.fail, lying.corrupt = true, true
	cases := []struct {
		name   string
		signer crypto.Signer
		sub    identity.DID
		code   contracts.Code
	}{
		{"nil signer", nil, holder.did(t), contracts.CodeInvalidCapability},
		{"ecdsa signer", ec, holder.did(t), contracts.CodeInvalidCapability},
		{"failing signer", failing, holder.did(t), contracts.CodeCryptoError},
		{"lying signer", lying, holder.did(t), contracts.CodeCryptoError},
		{"zero subject", holder, identity.DID{}, contracts.CodeInvalidCapability},
	}
	for _, c := range cases {
		tok, err := capability.Issue(c.signer, c.sub, readGrant, exp, nil)
		if tok != nil || contracts.CodeOf(err) != c.code {
			t.Errorf("%s: Issue = %v, %v; want code %s", c.name, tok, err, c.code)
		}
	}
	if _, err := capability.ParseSubject("did:key:nope"); contracts.CodeOf(err) != contracts.CodeInvalidCapability || !errors.Is(err, identity.ErrInvalidDID) {
		t.Fatalf("ParseSubject(bad) = %v", err)
	}
	if d, err := capability.ParseSubject(holder.did(t).String()); err != nil || d != holder.did(t) {
		t.Fatalf("ParseSubject(good) = %v, %v", d, err)
	}
}

// TestSignMCPRequestWithSigner signs an MCP request with a non-wallet key
// and verifies it; a lying signer is caught before anything is returned.
func TestSignMCPRequestWithSigner(t *testing.T) {
	k := newKMSKey(t)
	now := time.Now()
	f, err := capability.SignMCPRequest(k, json.RawMessage(`{"q":"x"}`), "s1", "c1", "fs", "read", now.Unix())
	if err != nil {
		t.Fatal(err)
	}
	p, signer, err := capability.VerifyMCPRequest(f, now, time.Minute)
	if err != nil || signer != k.did(t) || f.SignerDID != k.did(t).String() || p.Tool != "fs" {
		t.Fatalf("VerifyMCPRequest = %+v, %s, %v", p, signer, err)
	}
	lying := newKMSKey(t)
	lying.corrupt = true
	if f, err := capability.SignMCPRequest(lying, json.RawMessage(`{}`), "s", "c", "t", "a", now.Unix()); f != nil || !errors.Is(err, contracts.ErrCrypto) {
		t.Fatalf("lying signer: %v, %v", f, err)
	}
	if _, err := capability.SignMCPRequest(nil, json.RawMessage(`{}`), "s", "c", "t", "a", now.Unix()); !errors.Is(err, contracts.ErrInvalidInput) {
		t.Fatalf("nil signer: %v", err)
	}
}
