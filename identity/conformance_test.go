package identity_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/internal/testenv"
)

func decodeHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformanceSigningVerify(t *testing.T) {
	var f struct {
		Vectors []struct {
			TestID string `json:"test_id"`
			Inputs struct {
				SeedHex     string `json:"seed_hex"`
				MessageUTF8 string `json:"message_utf8"`
			} `json:"inputs"`
			Expected struct {
				PublicKeyHex    string `json:"public_key_hex"`
				SignatureB64URL string `json:"signature_base64url"`
				DID             string `json:"did"`
				SignatureLength int    `json:"signature_length"`
				Verify          *bool  `json:"verify"`
			} `json:"expected"`
		} `json:"vectors"`
		Negative []struct {
			TestID string `json:"test_id"`
			Inputs struct {
				SeedHex         string `json:"seed_hex"`
				MessageUTF8     string `json:"message_utf8"`
				SignatureB64URL string `json:"signature_base64url"`
				WrongPubHex     string `json:"wrong_public_key_hex"`
				Original        string `json:"original_message"`
				Tampered        string `json:"tampered_message"`
			} `json:"inputs"`
			ExpectedError *struct {
				Code            string `json:"code"`
				MessageContains string `json:"message_contains"`
			} `json:"expected_error"`
			Expected struct {
				Verify *bool `json:"verify"`
			} `json:"expected"`
		} `json:"negative_cases"`
	}
	if err := json.Unmarshal(testenv.ReadContract(t, "test_vectors/sdk/signing_verify.json"), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) != 2 || len(f.Negative) != 3 {
		t.Fatalf("vector file has %d+%d cases, want 2+3", len(f.Vectors), len(f.Negative))
	}
	for _, v := range f.Vectors {
		t.Run(v.TestID, func(t *testing.T) {
			t.Parallel()
			w := mustWallet(t, decodeHex(t, v.Inputs.SeedHex))
			msg := []byte(v.Inputs.MessageUTF8)
			sig := w.Sign(msg)
			if e := v.Expected.PublicKeyHex; e != "" && hex.EncodeToString(w.PublicKey()) != e {
				t.Errorf("public key %x, want %s", w.PublicKey(), e)
			}
			if e := v.Expected.SignatureB64URL; e != "" && contracts.EncodeBase64URL(sig) != e {
				t.Errorf("signature %s, want %s", contracts.EncodeBase64URL(sig), e)
			}
			if e := v.Expected.DID; e != "" {
				if w.DID().String() != e {
					t.Errorf("DID %s, want %s", w.DID(), e)
				}
				d, err := identity.ParseDID(e)
				if err != nil || d != w.DID() {
					t.Errorf("ParseDID(%s): %v", e, err)
				}
			}
			if n := v.Expected.SignatureLength; n != 0 && len(sig) != n {
				t.Errorf("signature length %d, want %d", len(sig), n)
			}
			if v.Expected.Verify != nil && identity.Verify(msg, sig, w.PublicKey()) != *v.Expected.Verify {
				t.Errorf("verify != %v", *v.Expected.Verify)
			}
			if !identity.Verify(msg, sig, w.PublicKey()) {
				t.Error("own signature does not verify")
			}
		})
	}
	for _, v := range f.Negative {
		t.Run(v.TestID, func(t *testing.T) {
			t.Parallel()
			in := v.Inputs
			switch {
			case v.ExpectedError != nil:
				_, err := identity.WalletFromSeed(decodeHex(t, in.SeedHex))
				if string(contracts.CodeOf(err)) != v.ExpectedError.Code ||
					!strings.Contains(strings.ToLower(err.Error()), strings.ToLower(v.ExpectedError.MessageContains)) {
					t.Fatalf("err %v, want code %s containing %q", err, v.ExpectedError.Code, v.ExpectedError.MessageContains)
				}
			case in.WrongPubHex != "":
				sig, err := contracts.DecodeBase64URL(in.SignatureB64URL)
				if err != nil {
					t.Fatal(err)
				}
				if got := identity.Verify([]byte(in.MessageUTF8), sig, decodeHex(t, in.WrongPubHex)); got != *v.Expected.Verify {
					t.Fatalf("verify %v, want %v", got, *v.Expected.Verify)
				}
			case in.Tampered != "":
				w := mustWallet(t, decodeHex(t, in.SeedHex))
				sig := w.Sign([]byte(in.Original))
				if got := identity.Verify([]byte(in.Tampered), sig, w.PublicKey()); got != *v.Expected.Verify {
					t.Fatalf("verify %v, want %v", got, *v.Expected.Verify)
				}
			default:
				t.Fatalf("unknown negative case %s", v.TestID)
			}
		})
	}
}

// TestConformanceEd25519Signatures runs crypto/ed25519_signatures.json. The
// public key and signatures are legacy standard base64 (decoded with
// contracts.DecodeBase64Lenient); the signed message is the canonical JSON
// of the payload. The key registry holds the vector's one key under its own
// base64 text, so the wrong_key case fails at key resolution.
func TestConformanceEd25519Signatures(t *testing.T) {
	var f struct {
		KeyPair struct {
			PublicKeyB64 string `json:"public_key_b64"`
			KeyType      string `json:"key_type"`
		} `json:"key_pair"`
		Tests []struct {
			Name      string          `json:"name"`
			Payload   json.RawMessage `json:"payload"`
			Signature string          `json:"signature_b64"`
			KeyID     string          `json:"key_id"`
			Expected  string          `json:"expected"`
		} `json:"tests"`
	}
	if err := json.Unmarshal(testenv.ReadContract(t, "test_vectors/crypto/ed25519_signatures.json"), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Tests) != 3 || f.KeyPair.KeyType != "ed25519" {
		t.Fatalf("unexpected vector file: %d tests, key type %q", len(f.Tests), f.KeyPair.KeyType)
	}
	pub, err := contracts.DecodeBase64Lenient(f.KeyPair.PublicKeyB64)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		t.Fatalf("public key: %v (%d bytes)", err, len(pub))
	}
	keys := identity.StaticKeys{f.KeyPair.PublicKeyB64: pub}
	for _, tc := range f.Tests {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			valid := func() bool {
				k, err := keys.ResolveKey(context.Background(), tc.KeyID)
				if err != nil {
					if contracts.CodeOf(err) != contracts.CodeNotFound {
						t.Errorf("key resolution error %v, want NOT_FOUND", err)
					}
					return false
				}
				msg, err := contracts.CanonicalizeStrict(tc.Payload)
				if err != nil {
					t.Fatal(err)
				}
				sig, err := contracts.DecodeBase64Lenient(tc.Signature)
				if err != nil {
					return false
				}
				return identity.Verify(msg, sig, k)
			}()
			if want := tc.Expected == "valid"; valid != want {
				t.Fatalf("valid = %v, want %s", valid, tc.Expected)
			}
		})
	}
}

type attestationVector struct {
	Description string `json:"description"`
	Input       struct {
		Method       string          `json:"method"`
		RawPathQuery string          `json:"raw_path_query"`
		RawBodyJSON  json.RawMessage `json:"raw_body_json"`
		Nonce        string          `json:"nonce"`
		Timestamp    int64           `json:"timestamp"`
		Opcode       string          `json:"opcode"`
		PrivateKey   string          `json:"private_key"`
	} `json:"input"`
	VerifyContext struct {
		ReceivedPathQuery   string `json:"received_path_query"`
		ServerDerivedOpcode string `json:"server_derived_opcode"`
	} `json:"verify_context"`
	Tamper struct {
		SignatureFormat string `json:"signature_format"`
	} `json:"tamper"`
	Expected struct {
		SigningInputHex string `json:"signing_input_hex"`
		Signature       string `json:"signature"`
		Valid           bool   `json:"valid"`
		Error           string `json:"error"`
	} `json:"expected"`
}

func (v *attestationVector) body() []byte {
	if len(v.Input.RawBodyJSON) == 0 || string(v.Input.RawBodyJSON) == "null" {
		return nil
	}
	return v.Input.RawBodyJSON
}

func loadAttestationVectors(t *testing.T) []attestationVector {
	var f struct {
		Vectors []attestationVector `json:"vectors"`
	}
	if err := json.Unmarshal(testenv.ReadContract(t, "test_vectors/crypto/http_attestation_v1.json"), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) != 6 {
		t.Fatalf("%d attestation vectors, want 6", len(f.Vectors))
	}
	return f.Vectors
}

// TestConformanceHTTPAttestationV1 checks, for each of the 6 vectors, that
// the signing input and signature are reproduced byte for byte by both the
// low-level function and AttestationSigner, and that AttestationVerifier
// reaches the expected outcome with the expected error code.
func TestConformanceHTTPAttestationV1(t *testing.T) {
	for _, v := range loadAttestationVectors(t) {
		t.Run(v.Description, func(t *testing.T) {
			t.Parallel()
			w := mustWallet(t, decodeHex(t, v.Input.PrivateKey))
			ts := time.Unix(v.Input.Timestamp, 0)
			var canon []byte
			if b := v.body(); b != nil {
				var err error
				if canon, err = contracts.Canonicalize(b); err != nil {
					t.Fatal(err)
				}
			}
			input := identity.AttestationSigningInput(canon, v.Input.Method, v.Input.RawPathQuery,
				v.Input.Nonce, "1700000000", v.Input.Opcode)
			if got := hex.EncodeToString(input); got != v.Expected.SigningInputHex {
				t.Fatalf("signing input\n got %s\nwant %s", got, v.Expected.SigningInputHex)
			}
			if got := contracts.EncodeBase64URL(w.Sign(input)); got != v.Expected.Signature {
				t.Fatalf("signature %s, want %s", got, v.Expected.Signature)
			}

			// The signer produces the same headers from an *http.Request.
			signer, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{
				Signer: w.Signer(),
				Now:    func() time.Time { return ts },
				Nonce:  func() (string, error) { return v.Input.Nonce, nil },
			})
			if err != nil {
				t.Fatal(err)
			}
			var reqBody *bytes.Reader
			if b := v.body(); b != nil {
				reqBody = bytes.NewReader(b)
			}
			req := newVectorRequest(t, v.Input.Method, "https://gateway.example"+v.Input.RawPathQuery, reqBody)
			if err := signer.Sign(req, v.Input.Opcode); err != nil {
				t.Fatal(err)
			}
			if got := req.Header.Get(identity.HeaderSignature); got != v.Expected.Signature {
				t.Fatalf("signer header %s, want %s", got, v.Expected.Signature)
			}

			// Server side: replay what the vector says was received.
			target := v.Input.RawPathQuery
			if v.VerifyContext.ReceivedPathQuery != "" {
				target = v.VerifyContext.ReceivedPathQuery
			}
			var srvBody *bytes.Reader
			if b := v.body(); b != nil {
				srvBody = bytes.NewReader(b)
			}
			srv := httptest.NewRequest(v.Input.Method, target, orNil(srvBody))
			srv.Header = req.Header.Clone()
			if v.Tamper.SignatureFormat == "base64_padded" {
				s := srv.Header.Get(identity.HeaderSignature)
				srv.Header.Set(identity.HeaderSignature, s+strings.Repeat("=", (4-len(s)%4)%4))
			}
			opcode := v.Input.Opcode
			if v.VerifyContext.ServerDerivedOpcode != "" {
				opcode = v.VerifyContext.ServerDerivedOpcode
			}
			ver := newVerifier(t, w, ts, opcode, identity.NewMemNonceStore(16))
			a, err := ver.Verify(srv)
			if v.Expected.Valid {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if a.DID != w.DID() || a.KeyID != w.DID().String() || a.Opcode != opcode || a.Nonce != v.Input.Nonce {
					t.Fatalf("attestation %+v", a)
				}
				if b := v.body(); b != nil {
					got := new(bytes.Buffer)
					if _, err := got.ReadFrom(srv.Body); err != nil || !bytes.Equal(got.Bytes(), b) {
						t.Fatalf("body not restored: %q %v", got, err)
					}
				}
				return
			}
			if err == nil {
				t.Fatal("Verify accepted an invalid request")
			}
			if string(contracts.CodeOf(err)) != v.Expected.Error {
				t.Fatalf("code %s (%v), want %s", contracts.CodeOf(err), err, v.Expected.Error)
			}
			// Control: without the vector's tampering, the same request
			// verifies, so the rejection is due to that tampering alone.
			var ctlBody *bytes.Reader
			if b := v.body(); b != nil {
				ctlBody = bytes.NewReader(b)
			}
			ctl := httptest.NewRequest(v.Input.Method, v.Input.RawPathQuery, orNil(ctlBody))
			ctl.Header = req.Header.Clone()
			if _, err := newVerifier(t, w, ts, v.Input.Opcode, identity.NewMemNonceStore(16)).Verify(ctl); err != nil {
				t.Fatalf("untampered control request rejected: %v", err)
			}
		})
	}
}

func orNil(r *bytes.Reader) interface {
	Read([]byte) (int, error)
} {
	if r == nil {
		return nil
	}
	return r
}

func newVectorRequest(t *testing.T, method, url string, body *bytes.Reader) *http.Request {
	t.Helper()
	var req *http.Request
	var err error
	if body == nil {
		req, err = http.NewRequest(method, url, nil)
	} else {
		req, err = http.NewRequest(method, url, body)
	}
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func newVerifier(t testing.TB, w *identity.Wallet, now time.Time, opcode string, store identity.NonceStore) *identity.AttestationVerifier {
	t.Helper()
	v, err := identity.NewAttestationVerifier(identity.AttestationVerifierConfig{
		Opcode: func(*http.Request) (string, error) { return opcode, nil },
		Keys:   identity.DIDKeys(nil),
		Nonces: store,
		Now:    func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestConformanceReplayNonce runs crypto/replay_nonce.json through the
// verifier: the same nonce is accepted once and rejected with
// REPLAY_DETECTED the second time, even with a different timestamp.
func TestConformanceReplayNonce(t *testing.T) {
	var f struct {
		Tests []struct {
			Nonce     string `json:"nonce"`
			Timestamp int64  `json:"timestamp"`
			Status    string `json:"status"`
			Expected  string `json:"expected"`
		} `json:"tests"`
	}
	if err := json.Unmarshal(testenv.ReadContract(t, "test_vectors/crypto/replay_nonce.json"), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Tests) != 2 {
		t.Fatalf("%d replay vectors, want 2", len(f.Tests))
	}
	w := mustWallet(t, seedN(5))
	store := identity.NewMemNonceStore(16)
	direct := identity.NewMemNonceStore(16)
	for _, tc := range f.Tests {
		ts := time.Unix(tc.Timestamp, 0)
		signer, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{
			Signer: w.Signer(),
			Now:    func() time.Time { return ts },
			Nonce:  func() (string, error) { return tc.Nonce, nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, "/v1/health", nil)
		req.RequestURI = ""
		if err := signer.Sign(req, "sys.health"); err != nil {
			t.Fatal(err)
		}
		req.RequestURI = "/v1/health"
		_, err = newVerifier(t, w, ts, "sys.health", store).Verify(req)
		switch tc.Expected {
		case "accept":
			if err != nil {
				t.Fatalf("%s: %v", tc.Status, err)
			}
		case "reject":
			if contracts.CodeOf(err) != contracts.CodeReplayDetected || !errors.Is(err, contracts.ErrReplay) {
				t.Fatalf("%s: %v, want REPLAY_DETECTED", tc.Status, err)
			}
		default:
			t.Fatalf("unknown expectation %q", tc.Expected)
		}
		first, err := direct.Claim(context.Background(), tc.Nonce, time.Minute)
		if err != nil || first != (tc.Expected == "accept") {
			t.Fatalf("%s: store Claim = %v, %v", tc.Status, first, err)
		}
	}
}
