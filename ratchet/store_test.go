package ratchet_test

import (
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/ratchet"
	"github.com/talosgo/talos/ratchet/ratchettest"
)

func TestMemStoreConformance(t *testing.T) {
	ratchettest.Run(t, func(*testing.T) ratchet.SessionStore { return ratchet.NewMemStore() })
}

func TestStateBlobInSessionCreateRequest(t *testing.T) {
	kr := identity.NewKeyring()
	kr.Add("k", make([]byte, 32))
	kr.SetPrimary("k")
	w, _ := identity.GenerateWallet("bob")
	p, _ := ratchet.GeneratePrekey(w.Signer(), nil)
	alice, _ := ratchet.Initiate(p.Bundle(), ratchet.Config{})
	sealed, err := alice.MarshalSealed(kr, []byte("session-1"))
	if err != nil {
		t.Fatal(err)
	}
	blob, digest := ratchet.StateBlob(sealed)
	req, _ := contracts.Marshal(map[string]string{
		"schema_id": "talos.a2a.session_create_request", "schema_version": "v1",
		"responder_id": w.DID().String(), "ratchet_state_blob_b64u": blob, "ratchet_state_digest": digest,
	})
	if err := contracts.Validate("a2a/session_create_request", req); err != nil {
		t.Fatal(err)
	}
	raw, _ := contracts.DecodeBase64URL(blob)
	if _, err := ratchet.UnmarshalSealed(kr, raw, []byte("session-1"), ratchet.Config{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ratchet.UnmarshalSealed(kr, raw, []byte("session-2"), ratchet.Config{}); err == nil {
		t.Fatal("sealed state opened with another associated data")
	}
}
