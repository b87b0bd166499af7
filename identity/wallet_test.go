package identity_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

func seedN(n byte) []byte {
	s := make([]byte, 32)
	s[31] = n
	return s
}

func mustWallet(t testing.TB, seed []byte) *identity.Wallet {
	t.Helper()
	w, err := identity.WalletFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWalletPinned(t *testing.T) {
	w := mustWallet(t, seedN(1))
	if got, want := hex.EncodeToString(w.PublicKey()), "4cb5abf6ad79fbf5abbccafcc269d85cd2651ed4b885b5869f241aedf0a5ba29"; got != want {
		t.Errorf("public key %s, want %s", got, want)
	}
	if got, want := w.DID().String(), "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG"; got != want {
		t.Errorf("DID %s, want %s", got, want)
	}
	// Address pin from the contracts digest (section 2).
	if got, want := w.Address(), "4a67330b803d5c88757afb9328615344a89c49839a07f1f76887ad62d06a1f57"; got != want {
		t.Errorf("address %s, want %s", got, want)
	}
	if w.Name() != "" {
		t.Errorf("name %q, want empty", w.Name())
	}
	if n := w.WithName("alice"); n.Name() != "alice" || !n.Equal(w) || n.DID() != w.DID() {
		t.Errorf("WithName changed the key or lost the name")
	}
}

func TestWalletFromSeedLength(t *testing.T) {
	for _, n := range []int{0, 5, 31, 33, 64} {
		_, err := identity.WalletFromSeed(make([]byte, n))
		if contracts.CodeOf(err) != contracts.CodeInvalidInput || !strings.Contains(err.Error(), "seed") {
			t.Errorf("len %d: err %v, want TALOS_INVALID_INPUT mentioning seed", n, err)
		}
		if !errors.Is(err, contracts.ErrInvalidInput) {
			t.Errorf("len %d: errors.Is(ErrInvalidInput) false", n)
		}
	}
}

func TestWalletSeedCopied(t *testing.T) {
	seed := seedN(7)
	w := mustWallet(t, seed)
	want := w.DID()
	seed[0] ^= 0xff
	if w.DID() != want || !w.Verify([]byte("m"), w.Sign([]byte("m"))) {
		t.Fatal("wallet aliases the caller's seed")
	}
	pub := w.PublicKey()
	pub[0] ^= 0xff
	if !bytes.Equal(w.PublicKey(), want.PublicKey()) {
		t.Fatal("PublicKey returns an alias of internal state")
	}
}

func TestGenerateWallet(t *testing.T) {
	a, err := identity.GenerateWallet("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := identity.GenerateWallet("b")
	if err != nil {
		t.Fatal(err)
	}
	if a.Equal(b) || a.DID() == b.DID() {
		t.Fatal("two generated wallets are equal")
	}
	if a.Name() != "a" || len(a.Address()) != 64 {
		t.Fatalf("name %q address %q", a.Name(), a.Address())
	}
	msg := []byte("hello")
	sig := a.Sign(msg)
	if len(sig) != 64 || !identity.Verify(msg, sig, a.PublicKey()) || identity.Verify(msg, sig, b.PublicKey()) {
		t.Fatal("sign/verify mismatch")
	}
	if !a.DID().Verify(msg, sig) || a.DID().Verify([]byte("hellO"), sig) {
		t.Fatal("DID.Verify mismatch")
	}
}

func TestWalletEqual(t *testing.T) {
	a := mustWallet(t, seedN(1))
	b := mustWallet(t, seedN(1)).WithName("other")
	c := mustWallet(t, seedN(2))
	var nilW *identity.Wallet
	if !a.Equal(b) || a.Equal(c) || a.Equal(nil) || !nilW.Equal(nil) {
		t.Fatal("Equal is wrong")
	}
}

func TestWalletSigner(t *testing.T) {
	w := mustWallet(t, seedN(3))
	s := w.Signer()
	pub, ok := s.Public().(ed25519.PublicKey)
	if !ok || !bytes.Equal(pub, w.PublicKey()) {
		t.Fatalf("Signer().Public() = %T %x", s.Public(), s.Public())
	}
	msg := []byte("via crypto.Signer")
	sig, err := s.Sign(rand.Reader, msg, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sig, w.Sign(msg)) {
		t.Fatal("Signer signature differs from Wallet.Sign")
	}
	if _, err := s.Sign(rand.Reader, msg, crypto.SHA256); err == nil {
		t.Fatal("Signer accepted a SHA-256 digest for pure Ed25519")
	}
	if out := fmt.Sprintf("%v %+v %#v %s", s, s, s, s); strings.Contains(out, "priv") || containsSeed(out, w) {
		t.Fatalf("signer printed secret material: %s", out)
	}
}

// containsSeed reports whether out contains the seed of w in any common
// encoding (raw, hex, base64url, decimal bytes).
func containsSeed(out string, w *identity.Wallet) bool {
	text, err := w.MarshalPrivateText()
	if err != nil {
		panic(err)
	}
	b64 := strings.TrimPrefix(string(text), "talos-wallet-seed:")
	seed, err := contracts.DecodeBase64URL(b64)
	if err != nil {
		panic(err)
	}
	return strings.Contains(out, b64) ||
		strings.Contains(out, string(seed)) ||
		strings.Contains(strings.ToLower(out), hex.EncodeToString(seed)) ||
		strings.Contains(out, strings.Trim(fmt.Sprint(seed), "[]")) ||
		strings.Contains(out, fmt.Sprintf("%#v", seed)[len("[]byte{"):20])
}

func TestWalletNeverPrintsSeed(t *testing.T) {
	// A seed with distinctive bytes so that any leak is found in every encoding.
	seed := []byte("0123456789abcdefghijklmnopqrstuv")
	w := mustWallet(t, seed).WithName("agent")
	type holder struct {
		W   *identity.Wallet
		V   identity.Wallet
		Any any
		v   identity.Wallet
		p   *identity.Wallet
	}
	h := holder{W: w, V: *w, Any: w, v: *w, p: w}
	var outs []string
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q", "%10.3v"} {
		outs = append(outs, fmt.Sprintf(f, w), fmt.Sprintf(f, *w), fmt.Sprintf(f, h), fmt.Sprintf(f, &h))
	}
	outs = append(outs, fmt.Sprint(w), fmt.Sprintln(*w), w.String(), w.GoString())

	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("m", "wallet", w, "value", *w, "h", h)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("m", "wallet", w, "value", *w, "h", h)
	outs = append(outs, logs.String())

	for _, v := range []any{w, *w, h, &h, []*identity.Wallet{w}, map[string]any{"w": w}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%T): %v", v, err)
		}
		outs = append(outs, string(b))
	}
	for _, out := range outs {
		if containsSeed(out, w) || strings.Contains(out, string(seed)) {
			t.Errorf("seed leaked: %s", out)
		}
	}
	if s := fmt.Sprintf("%v", w); !strings.Contains(s, w.DID().String()) || !strings.Contains(s, "agent") {
		t.Errorf("String lacks the public identity: %s", s)
	}
	if !strings.Contains(logs.String(), w.Address()) {
		t.Errorf("LogValue lacks the address: %s", logs.String())
	}
}

func TestWalletJSON(t *testing.T) {
	w := mustWallet(t, seedN(1)).WithName("alice")
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"name":       "alice",
		"did":        w.DID().String(),
		"address":    w.Address(),
		"public_key": contracts.EncodeBase64URL(w.PublicKey()),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("json %s, want %v", b, want)
	}
	var back identity.Wallet
	if err := json.Unmarshal(b, &back); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("UnmarshalJSON: %v, want TALOS_INVALID_INPUT", err)
	}
}

func TestWalletPrivateText(t *testing.T) {
	w := mustWallet(t, seedN(9))
	text, err := w.MarshalPrivateText()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(text), "talos-wallet-seed:") {
		t.Fatalf("text %q lacks prefix", text)
	}
	back, err := identity.ParseWalletText(text)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(w) {
		t.Fatal("round trip changed the key")
	}
	app, _ := w.AppendPrivateText([]byte("x"))
	if string(app) != "x"+string(text) {
		t.Fatal("AppendPrivateText does not append")
	}
	good := string(text)
	for _, bad := range []string{
		"",
		good[len("talos-wallet-seed:"):], // no prefix
		"talos-sk:" + good[len("talos-wallet-seed:"):],
		good + "=",
		good + "\n",
		" " + good,
		good[:len(good)-1],
		good + "AA",
		w.DID().String(),
		"talos-wallet-seed:" + strings.Repeat("A", 200),
	} {
		_, err := identity.ParseWalletText([]byte(bad))
		if contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("ParseWalletText(%q) err %v, want TALOS_INVALID_INPUT", bad, err)
			continue
		}
		if len(bad) > 20 && strings.Contains(err.Error(), bad[len(bad)-20:]) {
			t.Errorf("error echoes the secret input: %v", err)
		}
	}
}

func TestVerifyNeverPanics(t *testing.T) {
	w := mustWallet(t, seedN(1))
	msg := []byte("m")
	sig := w.Sign(msg)
	pub := w.PublicKey()
	lengths := []int{0, 1, 31, 32, 33, 63, 64, 65, 128}
	for _, pl := range lengths {
		for _, sl := range lengths {
			p := make([]byte, pl)
			copy(p, pub)
			s := make([]byte, sl)
			copy(s, sig)
			got := identity.Verify(msg, s, p)
			if want := pl == 32 && sl == 64; got != want {
				t.Errorf("Verify(pub %d, sig %d) = %v, want %v", pl, sl, got, want)
			}
		}
	}
	if identity.Verify(nil, nil, nil) {
		t.Fatal("Verify(nil) true")
	}
	// An all-zero key and signature: a low-order point, must be false.
	if identity.Verify(msg, make([]byte, 64), make([]byte, 32)) {
		t.Fatal("Verify accepted the zero key/signature")
	}
	// Non-canonical S (S + L) must be rejected.
	bad := bytes.Clone(sig)
	bad[63] |= 0xf0
	if identity.Verify(msg, bad, pub) {
		t.Fatal("Verify accepted a non-canonical S")
	}
}
