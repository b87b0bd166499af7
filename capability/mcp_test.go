package capability

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/internal/testenv"
)

func TestMCPSignVerifyVectors(t *testing.T) {
	var file struct {
		Vectors []struct {
			TestID string `json:"test_id"`
			Inputs struct {
				SignerSeedHex string          `json:"signer_seed_hex"`
				Request       json.RawMessage `json:"request"`
				SessionID     string          `json:"session_id"`
				CorrelationID string          `json:"correlation_id"`
				Tool          string          `json:"tool"`
				Action        string          `json:"action"`
				Timestamp     int64           `json:"timestamp"`
			} `json:"inputs"`
			Expected struct {
				PayloadCanonical string `json:"payload_canonical"`
				SignatureLength  int    `json:"signature_length"`
				FrameType        string `json:"frame_type"`
			} `json:"expected"`
		} `json:"vectors"`
		Negative []struct {
			TestID string `json:"test_id"`
			Inputs struct {
				Expected string `json:"expected_correlation_id"`
				Actual   string `json:"actual_correlation_id"`
			} `json:"inputs"`
			Expected struct {
				Verify bool `json:"verify"`
			} `json:"expected"`
		} `json:"negative_cases"`
	}
	if err := json.Unmarshal(testenv.ReadContract(t, "test_vectors/sdk/mcp_sign_verify.json"), &file); err != nil {
		t.Fatal(err)
	}
	v := file.Vectors[0]
	seed, _ := hex.DecodeString(v.Inputs.SignerSeedHex)
	w, err := identity.WalletFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	in := v.Inputs
	f, err := SignMCPRequest(w.Signer(), in.Request, in.SessionID, in.CorrelationID, in.Tool, in.Action, in.Timestamp)
	if err != nil {
		t.Fatal(err)
	}
	if string(f.PayloadBytes) != v.Expected.PayloadCanonical {
		t.Fatalf("payload\n got %s\nwant %s", f.PayloadBytes, v.Expected.PayloadCanonical)
	}
	if len(f.Signature) != v.Expected.SignatureLength || MCPFrameType != v.Expected.FrameType {
		t.Fatal("signature length or frame type")
	}
	// The digest's derived pin for seed 01.
	if got := contracts.EncodeBase64URL(f.Signature); got != "AHebiNvx6TVZW-tky6Ztj73HLTaqAgQ_pJYH0zemn_8TgrCoGlyZ1HCTalvytWC4sy8P33LpoRKd1hbbSOo8BA" {
		t.Fatalf("signature %s", got)
	}
	if ok, err := VerifyMCPResponse(f, in.CorrelationID, w.PublicKey()); !ok || err != nil {
		t.Fatalf("verify: %v %v", ok, err)
	}
	for _, n := range file.Negative {
		g, err := SignMCPRequest(w.Signer(), in.Request, in.SessionID, n.Inputs.Actual, in.Tool, in.Action, in.Timestamp)
		if err != nil {
			t.Fatal(err)
		}
		// The unsigned copy lies; only the signed id counts.
		g.CorrelationID = n.Inputs.Expected
		if ok, err := VerifyMCPResponse(g, n.Inputs.Expected, w.PublicKey()); ok != n.Expected.Verify || err != nil {
			t.Fatalf("%s: verify = %v, %v", n.TestID, ok, err)
		}
	}
	// Wrong key and tampered payload are false, not errors.
	if ok, err := VerifyMCPResponse(f, in.CorrelationID, seedWallet(t, 2).PublicKey()); ok || err != nil {
		t.Fatal("wrong key verified")
	}
	bad := *f
	bad.PayloadBytes = []byte(string(f.PayloadBytes[:len(f.PayloadBytes)-2]) + "1}")
	if ok, _ := VerifyMCPResponse(&bad, in.CorrelationID, w.PublicKey()); ok {
		t.Fatal("tampered payload verified")
	}
	// Server side: signer proven, timestamp window, replay per session.
	p, who, err := VerifyMCPRequest(f, time.Unix(in.Timestamp+10, 0), 0)
	if err != nil || who != w.DID() || p.Tool != "filesystem" {
		t.Fatalf("VerifyMCPRequest: %v", err)
	}
	if _, _, err := VerifyMCPRequest(f, time.Unix(in.Timestamp+61, 0), 0); contracts.CodeOf(err) != contracts.CodeAuthExpired {
		t.Fatalf("stale: %v", err)
	}
	g := NewMCPReplayGuard(identity.NewMemNonceStore(10), 0)
	if err := g.Check(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if err := g.Check(context.Background(), p); !errors.Is(err, contracts.ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	if _, err := SignMCPRequest(w.Signer(), json.RawMessage(`{"x":1.5}`), "s", "c", "t", "a", 1); err == nil {
		t.Fatal("float in signed request accepted")
	}
	if _, err := SignMCPRequest(w.Signer(), json.RawMessage(` `), "s", "c", "t", "a", 1); err == nil {
		t.Fatal("empty request accepted")
	}
	if _, err := ParseMCPPayload([]byte(`{"action":"a","correlation_id":"c","extra":1,"request":{},"session_id":"s","timestamp":1,"tool":"t"}`)); err == nil {
		t.Fatal("extra payload member accepted")
	}
	if _, err := ParseMCPPayload([]byte(`{"action":"a","correlation_id":"c","request":{},"session_id":"s","tool":"t"}`)); err == nil {
		t.Fatal("missing timestamp accepted")
	}
}

func TestMCPHashingVectors(t *testing.T) {
	var file struct {
		ToolCalls []struct {
			Description string `json:"description"`
			Input       struct {
				Server     string `json:"tool_server"`
				Name       string `json:"tool_name"`
				Capability struct {
					ReadOnly bool `json:"read_only"`
				} `json:"capability"`
				Args json.RawMessage `json:"args"`
			} `json:"input"`
			Digest string `json:"digest"`
		} `json:"tool_call_vectors"`
		Documents []struct {
			Description string          `json:"description"`
			DocType     string          `json:"doc_type"`
			Input       json.RawMessage `json:"input"`
			InputB64    string          `json:"input_b64"`
			Digest      string          `json:"digest"`
		} `json:"document_vectors"`
		Negative []struct {
			Description string          `json:"description"`
			Spec        DocSpec         `json:"doc_spec"`
			Args        json.RawMessage `json:"args"`
			Expected    []DocHash       `json:"expected_hashes"`
			Code        string          `json:"error_code"`
		} `json:"negative_validation_vectors"`
	}
	if err := json.Unmarshal(testenv.ReadContract(t, "schemas/mcp/hashing_vectors.json"), &file); err != nil {
		t.Fatal(err)
	}
	for _, v := range file.ToolCalls {
		got, err := ToolCallDigest(v.Input.Server, v.Input.Name, v.Input.Capability.ReadOnly, v.Input.Args)
		if err != nil || got != v.Digest {
			t.Errorf("%s: %s %v, want %s", v.Description, got, err, v.Digest)
		}
	}
	for _, v := range file.Documents {
		var got string
		var err error
		switch v.DocType {
		case "json":
			got, err = DocumentDigest(v.Input)
		case "bytes":
			var b []byte
			b, err = base64.StdEncoding.DecodeString(v.InputB64)
			got = BytesDigest(b)
		}
		if err != nil || got != v.Digest {
			t.Errorf("%s: %s %v, want %s", v.Description, got, err, v.Digest)
		}
	}
	for _, v := range file.Negative {
		err := ValidateDocWrites(v.Spec, v.Args, v.Expected)
		if string(contracts.CodeOf(err)) != v.Code {
			t.Errorf("%s: %v, want %s", v.Description, err, v.Code)
		}
		// The same call with a matching hash and a generous size passes.
		if v.Code == string(CodeDocHashMismatch) || v.Code == string(CodeDocSizeExceeded) {
			spec := v.Spec
			spec.MaxWriteBytes = 100
			if err := ValidateDocWrites(spec, v.Args, []DocHash{{Pointer: "/data", Hash: BytesDigest([]byte("test"))}}); err != nil {
				t.Errorf("%s (fixed): %v", v.Description, err)
			}
		}
	}
}

func TestAuthorizeMCP(t *testing.T) {
	f := newFixture(t, nil)
	agent := f.ws[1]
	ts := f.clock.now().Unix()
	req := json.RawMessage(`{"method":"tools/call","params":{"name":"read","path":"/x"}}`)
	frame, err := SignMCPRequest(agent.Signer(), req, "sess", "corr-1", "fs", "read", ts)
	if err != nil {
		t.Fatal(err)
	}
	guard := NewMCPReplayGuard(identity.NewMemNonceStore(100), 0)
	ctx := context.Background()
	d, p, err := AuthorizeMCP(ctx, f.v, frame, f.enc, guard, f.clock.now())
	if err != nil || !d.Allowed || p.CorrelationID != "corr-1" || d.Principal != agent.DID() || d.ArgsDigest == "" {
		t.Fatalf("%+v %v", d, err)
	}
	d, _, _ = AuthorizeMCP(ctx, f.v, frame, f.enc, guard, f.clock.now())
	wantReason(t, d, ReasonReplay)
	// Signed by someone else than the token's subject.
	other, _ := SignMCPRequest(f.ws[2].Signer(), req, "sess", "corr-2", "fs", "read", ts)
	d, _, _ = AuthorizeMCP(ctx, f.v, other, f.enc, guard, f.clock.now())
	wantReason(t, d, ReasonHolderMismatch)
	// Tampered tool in the payload: the signature no longer verifies.
	bad := *frame
	bad.PayloadBytes = []byte(strings.Replace(string(frame.PayloadBytes), `"tool":"fs"`, `"tool":"db"`, 1))
	d, _, _ = AuthorizeMCP(ctx, f.v, &bad, f.enc, guard, f.clock.now())
	wantReason(t, d, ReasonSignatureInvalid)
	// Stale.
	d, _, _ = AuthorizeMCP(ctx, f.v, frame, f.enc, guard, f.clock.now().Add(2*time.Minute))
	wantReason(t, d, ReasonReplay)
	// A denied request does not burn its correlation id.
	wr, _ := SignMCPRequest(agent.Signer(), req, "sess", "corr-3", "fs", "delete", ts)
	d, _, _ = AuthorizeMCP(ctx, f.v, wr, f.enc, guard, f.clock.now())
	wantReason(t, d, ReasonScopeMismatch)
	ok3, _ := SignMCPRequest(agent.Signer(), req, "sess", "corr-3", "fs", "read", ts)
	d, _, _ = AuthorizeMCP(ctx, f.v, ok3, f.enc, guard, f.clock.now())
	wantReason(t, d, ReasonAllowed)
}
