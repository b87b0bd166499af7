package identity_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

const didSeed1 = "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG"

func TestParseDIDRoundTrip(t *testing.T) {
	d, err := identity.ParseDID(didSeed1)
	if err != nil {
		t.Fatal(err)
	}
	if d.String() != didSeed1 || d.IsZero() {
		t.Fatalf("String %q", d.String())
	}
	w := mustWallet(t, seedN(1))
	if d != w.DID() {
		t.Fatal("parsed DID != wallet DID")
	}
	d2, err := identity.DIDFromPublicKey(w.PublicKey())
	if err != nil || d2 != d {
		t.Fatalf("DIDFromPublicKey: %v", err)
	}
	for range 50 {
		g, err := identity.GenerateWallet("")
		if err != nil {
			t.Fatal(err)
		}
		s := g.DID().String()
		p, err := identity.ParseDID(s)
		if err != nil || p != g.DID() || p.String() != s {
			t.Fatalf("round trip of %s: %v", s, err)
		}
	}
}

func TestDIDLeadingZeroKeys(t *testing.T) {
	// Keys that start with zero bytes exercise the base58 leading-'1' rule in
	// the middle of the payload (the multicodec prefix is non-zero).
	for _, pub := range [][]byte{make([]byte, 32), append([]byte{0, 0, 0}, make([]byte, 29)...), func() []byte {
		b := make([]byte, 32)
		for i := range b {
			b[i] = 0xff
		}
		return b
	}()} {
		d, err := identity.DIDFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		p, err := identity.ParseDID(d.String())
		if err != nil || p != d {
			t.Fatalf("round trip %s: %v", d, err)
		}
	}
}

func TestParseDIDRejects(t *testing.T) {
	// did:key of an X25519 key (multicodec 0xec01), a P-256 key and secp256k1.
	x25519 := "did:key:z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc"
	p256 := "did:key:zDnaerDaTF5BXEavCrfRZEk316dpbLsfPDZ3WJ5hRTPFU2169"
	secp := "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"
	cases := map[string]string{
		"empty":            "",
		"no prefix":        "z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG",
		"other method":     "did:web:example.com",
		"upper method":     "DID:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG",
		"base64 multibase": "did:key:m7QFMhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG",
		"bad base58 0":     "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJ0",
		"bad base58 l":     "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJl",
		"space":            didSeed1 + " ",
		"newline":          didSeed1 + "\n",
		"fragment":         didSeed1 + "#" + didSeed1[len("did:key:"):],
		"path":             didSeed1 + "/path",
		"query":            didSeed1 + "?q",
		"trailing data":    didSeed1 + "1",
		"truncated":        didSeed1[:len(didSeed1)-1],
		"leading 1":        "did:key:z1" + didSeed1[len("did:key:z"):],
		"x25519":           x25519,
		"p256":             p256,
		"secp256k1":        secp,
		"prefix only":      "did:key:z",
		"too long":         "did:key:z" + strings.Repeat("2", 500),
	}
	for name, s := range cases {
		_, err := identity.ParseDID(s)
		if err == nil {
			t.Errorf("%s: ParseDID(%q) accepted", name, s)
			continue
		}
		if contracts.CodeOf(err) != contracts.CodeInvalidInput || !errors.Is(err, identity.ErrInvalidDID) {
			t.Errorf("%s: err %v, want TALOS_INVALID_INPUT matching ErrInvalidDID", name, err)
		}
	}
	if _, err := identity.DIDFromPublicKey(make([]byte, 31)); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Errorf("DIDFromPublicKey(31 bytes): %v", err)
	}
}

func TestDIDZero(t *testing.T) {
	var d identity.DID
	if !d.IsZero() || d.String() != "" || d.PublicKey() != nil || d.Verify(nil, nil) {
		t.Fatal("zero DID is not empty")
	}
	if _, err := d.MarshalText(); err == nil {
		t.Fatal("MarshalText of the zero DID succeeded")
	}
	if err := d.UnmarshalText(nil); err == nil {
		t.Fatal("UnmarshalText(empty) succeeded")
	}
}

func TestDIDText(t *testing.T) {
	type doc struct {
		Issuer identity.DID `json:"issuer"`
	}
	w := mustWallet(t, seedN(1))
	b, err := json.Marshal(doc{Issuer: w.DID()})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"issuer":"`+didSeed1+`"}` {
		t.Fatalf("json %s", b)
	}
	var back doc
	if err := json.Unmarshal(b, &back); err != nil || back.Issuer != w.DID() {
		t.Fatalf("unmarshal: %v", err)
	}
	before := back.Issuer
	if err := json.Unmarshal([]byte(`{"issuer":"did:key:zBAD"}`), &back); err == nil {
		t.Fatal("bad DID accepted")
	}
	if back.Issuer != before {
		t.Fatal("failed UnmarshalText changed the value")
	}
	app, err := w.DID().AppendText([]byte("x="))
	if err != nil || string(app) != "x="+didSeed1 {
		t.Fatalf("AppendText %q %v", app, err)
	}
	m := map[identity.DID]int{w.DID(): 1}
	if m[mustWallet(t, seedN(1)).DID()] != 1 {
		t.Fatal("DID is not usable as a map key")
	}
	var pub ed25519.PublicKey = w.DID().PublicKey()
	pub[0] ^= 1
	if w.DID().PublicKey()[0] == pub[0] {
		t.Fatal("PublicKey aliases the DID")
	}
}

func TestParseDIDAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() {
		if _, err := identity.ParseDID(didSeed1); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("ParseDID allocates %.1f times, want 0", n)
	}
	w := mustWallet(t, seedN(1))
	msg, sig := []byte("m"), w.Sign([]byte("m"))
	if n := testing.AllocsPerRun(20, func() { w.DID().Verify(msg, sig) }); n != 0 {
		t.Fatalf("DID.Verify allocates %.1f times, want 0", n)
	}
}
