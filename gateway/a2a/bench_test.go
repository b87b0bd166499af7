package a2a

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/identity"
)

// BenchmarkRPCGetTask is one attested GetTask through the whole stack
// (attestation, Kernel decision on a verified token, audit append, store,
// JSON-RPC encoding) in process, beside ed25519.Verify, the one signature
// check each request costs: compare their ns/op.
func BenchmarkRPCGetTask(b *testing.B) {
	f := newFixture(b)
	defer close(f.release)
	signer, _ := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: f.agent.Signer()})
	send := func(body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/rpc", bytes.NewReader([]byte(body)))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set(talos.HeaderCapability, f.tokA)
		if err := signer.Sign(r, "a2a.v1.rpc"); err != nil {
			b.Fatal(err)
		}
		w := httptest.NewRecorder()
		f.mux.ServeHTTP(w, r)
		return w
	}
	w := send(`{"jsonrpc":"2.0","id":"s","method":"SendMessage","params":{"message":{"messageId":"m","role":"user","parts":[{"text":"hi"}]}}}`)
	var res struct {
		Result struct {
			Task struct {
				ID string `json:"id"`
			} `json:"task"`
		} `json:"result"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || res.Result.Task.ID == "" {
		b.Fatalf("send: %s", w.Body.Bytes())
	}
	get := `{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"` + res.Result.Task.ID + `"}}`
	b.Run("rpc", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if w := send(get); w.Code != http.StatusOK || bytes.Contains(w.Body.Bytes(), []byte(`"error"`)) {
				b.Fatalf("%d %s", w.Code, w.Body.Bytes())
			}
		}
	})
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := []byte(get)
	sig := ed25519.Sign(priv, msg)
	b.Run("ed25519.Verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("verify")
			}
		}
	})
}
