package identity_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/talosgo/talos/identity"
)

// The README quickstart: a wallet, its DID, a signature and its
// verification.
func Example() {
	seed, _ := hex.DecodeString("0000000000000000000000000000000000000000000000000000000000000001")
	w, err := identity.WalletFromSeed(seed) // or identity.GenerateWallet("agent-1")
	if err != nil {
		panic(err)
	}
	fmt.Println(w.DID())

	msg := []byte("Hello, Talos!")
	sig := w.Sign(msg)
	fmt.Println(identity.Verify(msg, sig, w.PublicKey()))

	// Anyone holding only the DID can verify too.
	did, err := identity.ParseDID(w.DID().String())
	if err != nil {
		panic(err)
	}
	fmt.Println(did.Verify(msg, sig), did.Verify([]byte("Hello, Talos?"), sig))
	// Output:
	// did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG
	// true
	// true false
}

func ExampleGenerateWallet() {
	w, err := identity.GenerateWallet("agent-1")
	if err != nil {
		panic(err)
	}
	fmt.Println(w.Name(), strings.HasPrefix(w.DID().String(), "did:key:z6Mk"), len(w.Address()))
	// Printing a wallet shows only public data.
	fmt.Println(strings.HasPrefix(fmt.Sprintf("%v", w), `identity.Wallet("agent-1" did:key:`))
	// Output:
	// agent-1 true 64
	// true
}

func ExampleWallet_MarshalPrivateText() {
	w, _ := identity.WalletFromSeed(make([]byte, 32))
	text, _ := w.MarshalPrivateText() // store this like a private key
	fmt.Println(string(text))
	back, err := identity.ParseWalletText(text)
	fmt.Println(err == nil && back.Equal(w))
	// Output:
	// talos-wallet-seed:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
	// true
}

func ExampleParseDID() {
	_, err := identity.ParseDID("did:key:z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc") // an X25519 key
	fmt.Println(err)
	// Output:
	// TALOS_INVALID_INPUT: identity: invalid did:key: multicodec is not ed25519-pub (0xed01)
}

// An HTTP client signs requests; a server verifies them in middleware and
// learns the caller's DID.
func ExampleAttestationVerifier_Middleware() {
	verifier, err := identity.NewAttestationVerifier(identity.AttestationVerifierConfig{
		Opcode: func(r *http.Request) (string, error) {
			if r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions" {
				return "llm.chat.completions", nil
			}
			return "", fmt.Errorf("no opcode for %s %s", r.Method, r.URL.Path)
		},
		Keys:   identity.DIDKeys(nil), // X-Talos-Key-ID is a did:key
		Nonces: identity.NewMemNonceStore(100_000),
	})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(verifier.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, _ := identity.AttestationFromContext(r.Context())
		body, _ := io.ReadAll(r.Body) // the body is still there
		fmt.Fprintf(w, "%s %s %s", a.Opcode, a.DID, body)
	})))
	defer srv.Close()

	wallet, _ := identity.WalletFromSeed(bytes.Repeat([]byte{1}, 32))
	signer, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: wallet.Signer()})
	if err != nil {
		panic(err)
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost,
		srv.URL+"/v1/chat/completions?version=2023-01-01", strings.NewReader(`{"model":"gpt-4"}`))
	if err := signer.Sign(req, "llm.chat.completions"); err != nil {
		panic(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(out) == "llm.chat.completions "+wallet.DID().String()+` {"model":"gpt-4"}`)
	// Output:
	// 200 true
}

func ExampleKeyring() {
	kr := identity.NewKeyring()
	_ = kr.Add("kek-2025", bytes.Repeat([]byte{'0'}, 32))
	aad := []byte("talos.secret.v1:db-password")
	env, _ := kr.Seal([]byte("hunter2"), aad)

	// Rotate: a new primary; old envelopes still open and can be rewrapped.
	_ = kr.Add("kek-2026", bytes.Repeat([]byte{'1'}, 32))
	_ = kr.SetPrimary("kek-2026")
	env2, _ := kr.Rewrap(env, aad)
	pt, err := kr.Open(env2, aad)
	fmt.Println(string(pt), err, bytes.Contains(env2, []byte(`"kek_id":"kek-2026"`)))
	fmt.Println(kr)
	// Output:
	// hunter2 <nil> true
	// identity.Keyring(primary=kek-2026 ids=kek-2025,kek-2026)
}

// A did:web DID resolved over HTTPS (here a local test server; in
// production the default client and a real domain).
func ExampleWebResolver() {
	wallet, _ := identity.WalletFromSeed(bytes.Repeat([]byte{2}, 32))
	var did string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/agents/alice/did.json" {
			http.NotFound(w, r)
			return
		}
		multibase := strings.TrimPrefix(wallet.DID().String(), "did:key:")
		fmt.Fprintf(w, `{"id":%q,"verificationMethod":[{"id":"#key-1","type":"Multikey","controller":%q,"publicKeyMultibase":%q}],"authentication":["#key-1"]}`,
			did, did, multibase)
	}))
	defer srv.Close()
	did = "did:web:" + strings.Replace(strings.TrimPrefix(srv.URL, "https://"), ":", "%3A", 1) + ":agents:alice"

	resolver := identity.NewMultiResolver(map[string]identity.Resolver{
		"web": identity.NewWebResolver(identity.WebResolverConfig{Client: srv.Client()}),
	})
	keys := identity.DIDKeys(resolver) // usable as AttestationVerifierConfig.Keys
	pub, err := keys.ResolveKey(context.Background(), did+"#key-1")
	fmt.Println(err, pub.Equal(wallet.PublicKey()))
	// Output:
	// <nil> true
}

// A nonce store shared by many principals: each may hold at most 2 live
// nonces here, so one of them cannot lock the others out.
func ExampleNewMemNonceStoreConfig() {
	store, err := identity.NewMemNonceStoreConfig(identity.MemNonceStoreConfig{Max: 100, MaxPerPrincipal: 2})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for _, n := range []string{"n1", "n2", "n3"} {
		first, err := identity.ClaimNonce(ctx, store, "did:key:alice", "alice:"+n, time.Minute)
		fmt.Println("alice", n, first, errors.Is(err, identity.ErrNonceRateLimited))
	}
	first, err := identity.ClaimNonce(ctx, store, "did:key:bob", "bob:n1", time.Minute)
	fmt.Println("bob n1", first, err)
	// Output:
	// alice n1 true false
	// alice n2 true false
	// alice n3 false true
	// bob n1 true <nil>
}
