package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/testenv"
)

type envelopeVectorV1 struct {
	KEK        string          `json:"kek_b64u"`
	Plaintext  string          `json:"plaintext_utf8"`
	Nonce      string          `json:"nonce_b64u"`
	AADUTF8    string          `json:"aad_utf8"`
	AAD        string          `json:"aad_b64u"`
	Ciphertext string          `json:"ciphertext_b64u"`
	Tag        string          `json:"tag_b64u"`
	Envelope   json.RawMessage `json:"envelope"`
}

func loadEnvelopeV1(t testing.TB) []envelopeVectorV1 {
	var vs []envelopeVectorV1
	if err := json.Unmarshal(testenv.ReadContract(t, "test_vectors/secrets/envelope_v1.json"), &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 {
		t.Fatalf("%d envelope_v1 vectors, want 1", len(vs))
	}
	return vs
}

func b64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := contracts.DecodeBase64URL(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConformanceEnvelopeV1 runs secrets/envelope_v1.json: the contract
// envelope opens with the KEK and AAD, and Seal with the vector's nonce
// reproduces the envelope exactly.
func TestConformanceEnvelopeV1(t *testing.T) {
	for _, v := range loadEnvelopeV1(t) {
		var kid struct {
			KEKID string `json:"kek_id"`
		}
		if err := json.Unmarshal(v.Envelope, &kid); err != nil {
			t.Fatal(err)
		}
		k := NewKeyring()
		if err := k.Add(kid.KEKID, b64(t, v.KEK)); err != nil {
			t.Fatal(err)
		}
		if string(b64(t, v.AAD)) != v.AADUTF8 {
			t.Fatal("vector aad fields disagree")
		}
		pt, err := k.Open(v.Envelope, []byte(v.AADUTF8))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if string(pt) != v.Plaintext {
			t.Fatalf("plaintext %q, want %q", pt, v.Plaintext)
		}
		k.rand = bytes.NewReader(b64(t, v.Nonce))
		sealed, err := k.Seal([]byte(v.Plaintext), []byte(v.AADUTF8))
		if err != nil {
			t.Fatal(err)
		}
		want, err := contracts.Canonicalize(v.Envelope)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(sealed, want) {
			t.Fatalf("Seal\n got %s\nwant %s", sealed, want)
		}
		// Wrong AAD, or none, does not open.
		for _, aad := range [][]byte{nil, []byte("talos.secret.v1:other")} {
			if _, err := k.Open(v.Envelope, aad); !errors.Is(err, ErrEnvelopeOpen) {
				t.Fatalf("Open with aad %q: %v, want ErrEnvelopeOpen", aad, err)
			}
		}
	}
}

// TestConformanceEnvelopeHexForm runs secrets/envelope_vectors.json: the
// valid hex envelope is accepted by the parser (its ciphertext is a
// placeholder under an unknown KMS key, so it cannot be opened), and each
// invalid one is rejected as TALOS_INVALID_INPUT before any decryption.
func TestConformanceEnvelopeHexForm(t *testing.T) {
	var f struct {
		Valid []struct {
			Description string          `json:"description"`
			Input       json.RawMessage `json:"input"`
		} `json:"valid"`
		Invalid []struct {
			Description string          `json:"description"`
			Input       json.RawMessage `json:"input"`
			ErrorCode   string          `json:"error_code"`
		} `json:"invalid"`
	}
	if err := json.Unmarshal(testenv.ReadContract(t, "test_vectors/secrets/envelope_vectors.json"), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Valid) != 1 || len(f.Invalid) != 3 {
		t.Fatalf("%d+%d vectors, want 1+3", len(f.Valid), len(f.Invalid))
	}
	k := NewKeyring()
	for _, v := range f.Valid {
		env, err := parseEnvelope(v.Input)
		if err != nil {
			t.Errorf("%s: %v", v.Description, err)
			continue
		}
		if _, err := k.Open(v.Input, nil); contracts.CodeOf(err) != contracts.CodeNotFound {
			t.Errorf("%s: Open with no such KEK: %v, want NOT_FOUND", v.Description, err)
		}
		// With a KEK of that id, the placeholder ciphertext fails to authenticate.
		k2 := NewKeyring()
		if err := k2.Add(env.kekID, make([]byte, 32)); err != nil {
			t.Fatal(err)
		}
		if _, err := k2.Open(v.Input, nil); !errors.Is(err, ErrEnvelopeOpen) {
			t.Errorf("%s: Open: %v, want ErrEnvelopeOpen", v.Description, err)
		}
	}
	for _, v := range f.Invalid {
		// These vectors omit schema_id/schema_version; add them so the
		// rejection is due to the field the vector is about.
		var m map[string]any
		if err := json.Unmarshal(v.Input, &m); err != nil {
			t.Fatal(err)
		}
		m["schema_id"], m["schema_version"] = "talos.secrets.envelope", "v1"
		full, _ := json.Marshal(m)
		for _, in := range [][]byte{v.Input, full} {
			if _, err := parseEnvelope(in); contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Errorf("%s (%s): %v, want TALOS_INVALID_INPUT", v.Description, v.ErrorCode, err)
			}
		}
	}
}

func TestKeyringHexFormRoundTrip(t *testing.T) {
	k := NewKeyring()
	if err := k.Add("k1", bytes.Repeat([]byte{7}, 32)); err != nil {
		t.Fatal(err)
	}
	sealed, err := k.Seal([]byte("secret"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	env, err := parseEnvelope(sealed)
	if err != nil {
		t.Fatal(err)
	}
	hexEnv := fmt.Sprintf(`{"schema_id":"talos.secrets.envelope","schema_version":"v1","kek_id":"k1","iv":"%x","ciphertext":"%x","tag":"%x","alg":"aes-256-gcm","created_at":"2026-01-02T03:04:05.678Z"}`,
		env.nonce, env.ct, env.tag)
	pt, err := k.Open([]byte(hexEnv), []byte("aad"))
	if err != nil || string(pt) != "secret" {
		t.Fatalf("hex form: %q %v", pt, err)
	}
	// Upper-case hex, a bad created_at and an extra field are rejected.
	for _, bad := range []string{
		strings.Replace(hexEnv, fmt.Sprintf("%x", env.tag), fmt.Sprintf("%X", env.tag), 1),
		strings.Replace(hexEnv, "05.678Z", "05Z", 1),
		strings.Replace(hexEnv, `"alg"`, `"extra":"x","alg"`, 1),
	} {
		if _, err := k.Open([]byte(bad), []byte("aad")); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("accepted %s: %v", bad, err)
		}
	}
}

func TestKeyringRotation(t *testing.T) {
	k := NewKeyring()
	if _, err := k.Seal([]byte("x"), nil); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("Seal on an empty keyring: %v", err)
	}
	old := bytes.Repeat([]byte{1}, 32)
	if err := k.Add("old", old); err != nil {
		t.Fatal(err)
	}
	aad := []byte("talos.secret.v1:db-password")
	e1, err := k.Seal([]byte("hunter2"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Add("new", bytes.Repeat([]byte{2}, 32)); err != nil {
		t.Fatal(err)
	}
	if k.Primary() != "old" {
		t.Fatal("Add changed the primary")
	}
	if err := k.SetPrimary("new"); err != nil {
		t.Fatal(err)
	}
	if err := k.SetPrimary("missing"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("SetPrimary(missing): %v", err)
	}
	if pt, err := k.Open(e1, aad); err != nil || string(pt) != "hunter2" {
		t.Fatalf("old envelope after rotation: %q %v", pt, err)
	}
	e2, err := k.Rewrap(e1, aad)
	if err != nil {
		t.Fatal(err)
	}
	env, _ := parseEnvelope(e2)
	if env.kekID != "new" {
		t.Fatalf("rewrapped under %q", env.kekID)
	}
	if err := k.Remove("new"); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("Remove(primary): %v", err)
	}
	if err := k.Remove("old"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Open(e1, aad); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("envelope of a removed KEK: %v", err)
	}
	if pt, err := k.Open(e2, aad); err != nil || string(pt) != "hunter2" {
		t.Fatalf("rewrapped envelope: %q %v", pt, err)
	}
	if _, err := k.Rewrap(e2, []byte("other")); !errors.Is(err, ErrEnvelopeOpen) {
		t.Fatalf("Rewrap with wrong aad: %v", err)
	}
	if fmt.Sprint(k.IDs()) != "[new]" {
		t.Fatalf("IDs %v", k.IDs())
	}
}

func TestKeyringAddErrors(t *testing.T) {
	k := NewKeyring()
	for _, tc := range []struct {
		id  string
		key []byte
	}{
		{"", make([]byte, 32)},
		{"has space", make([]byte, 32)},
		{strings.Repeat("a", 256), make([]byte, 32)},
		{"k", make([]byte, 16)},
		{"k", nil},
	} {
		if err := k.Add(tc.id, tc.key); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("Add(%q, %d bytes): %v", tc.id, len(tc.key), err)
		}
	}
	if err := k.Add("k", make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	if err := k.Add("k", make([]byte, 32)); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("duplicate Add: %v", err)
	}
	if _, err := k.Seal(nil, nil); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("Seal(empty): %v", err)
	}
}

func TestKeyringNeverPrintsKEK(t *testing.T) {
	key := []byte("KEK-0123456789abcdefghijklmnopqr")
	k := NewKeyring()
	if err := k.Add("prod-1", key); err != nil {
		t.Fatal(err)
	}
	type holder struct {
		K *Keyring
		k *Keyring
	}
	h := holder{K: k, k: k}
	var outs []string
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q", "%d"} {
		outs = append(outs, fmt.Sprintf(f, k), fmt.Sprintf(f, h), fmt.Sprintf(f, &h))
	}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("m", "kr", k, "h", h)
	outs = append(outs, logs.String())
	js, _ := json.Marshal(h)
	outs = append(outs, string(js))
	for _, out := range outs {
		if strings.Contains(out, string(key)) || strings.Contains(out, fmt.Sprintf("%x", key)) ||
			strings.Contains(out, strings.Trim(fmt.Sprint(key), "[]")) {
			t.Errorf("KEK leaked: %s", out)
		}
	}
	if !strings.Contains(fmt.Sprint(k), "prod-1") {
		t.Errorf("String lacks the key id: %s", k)
	}
}

// FuzzKeyringOpen mutates a sealed envelope: a mutation may open only if it
// re-encodes the same envelope (for example whitespace or key order), and
// then it yields the original plaintext. Any change to the key id, nonce,
// ciphertext, tag or AAD never opens.
func FuzzKeyringOpen(f *testing.F) {
	k := NewKeyring()
	if err := k.Add("v1", bytes.Repeat([]byte{'0'}, 32)); err != nil {
		f.Fatal(err)
	}
	aad := []byte("talos.secret.v1:test-id-123")
	// A fixed nonce: every fuzz worker must seal the same envelope.
	k.rand = bytes.NewReader([]byte("111111111111"))
	orig, err := k.Seal([]byte("talos-secret-testing-2026"), aad)
	if err != nil {
		f.Fatal(err)
	}
	want, _ := parseEnvelope(orig)
	f.Add(orig)
	f.Add(bytes.ReplaceAll(orig, []byte(","), []byte(", ")))
	f.Add([]byte(`{"schema_id":"talos.secrets.envelope","schema_version":"v1","kek_id":"v1","iv":"313131313131313131313131","ciphertext":"00","tag":"00112233445566778899aabbccddeeff","alg":"aes-256-gcm"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, err := k.Open(b, aad)
		if err != nil {
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
			if _, ok := errors.AsType[*contracts.Error](err); !ok {
				t.Fatalf("error %T is not *contracts.Error", err)
			}
			return
		}
		got, perr := parseEnvelope(b)
		if perr != nil {
			t.Fatalf("opened an envelope that does not parse: %v", perr)
		}
		if got.kekID != want.kekID || !bytes.Equal(got.nonce, want.nonce) || !bytes.Equal(got.ct, want.ct) ||
			!bytes.Equal(got.tag, want.tag) {
			t.Fatalf("a modified envelope opened: %s", b)
		}
		if string(pt) != "talos-secret-testing-2026" {
			t.Fatalf("plaintext %q", pt)
		}
	})
}

func TestKeyringConcurrent(t *testing.T) {
	k := NewKeyring()
	if err := k.Add("k0", bytes.Repeat([]byte{0}, 32)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i < 20; i++ {
			id := fmt.Sprintf("k%d", i)
			if err := k.Add(id, bytes.Repeat([]byte{byte(i)}, 32)); err != nil {
				t.Error(err)
				return
			}
			if err := k.SetPrimary(id); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			aad := []byte(fmt.Sprintf("talos.secret.v1:%d", g))
			for range 50 {
				env, err := k.Seal([]byte("s"), aad)
				if err != nil {
					errs <- err
					return
				}
				if pt, err := k.Open(env, aad); err != nil || string(pt) != "s" {
					errs <- fmt.Errorf("open: %q %v", pt, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	<-done
}

// TestKeyringZeroValue checks that the zero Keyring works like NewKeyring's.
func TestKeyringZeroValue(t *testing.T) {
	var k Keyring
	if _, err := k.Seal([]byte("x"), nil); err == nil {
		t.Fatal("Seal on an empty keyring succeeded")
	}
	if err := k.Add("k1", make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	env, err := k.Seal([]byte("secret"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := k.Open(env, []byte("aad"))
	if err != nil || string(pt) != "secret" {
		t.Fatalf("Open: %q, %v", pt, err)
	}
}
