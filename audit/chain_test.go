package audit_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/testenv"
)

func TestGoldenTraceChain(t *testing.T) {
	var golden map[string]json.RawMessage
	if err := json.Unmarshal(testenv.ReadContract(t, "test_vectors/tga/golden_trace_chain.json"), &golden); err != nil {
		t.Fatal(err)
	}
	order := []string{"action_request", "supervisor_decision", "tool_call", "tool_effect"}
	var arts [][]byte
	for _, name := range order {
		a := golden[name]
		var obj map[string]any
		if err := json.Unmarshal(a, &obj); err != nil {
			t.Fatal(err)
		}
		d, err := audit.ChainDigest([]byte(a), "_digest")
		if err != nil {
			t.Fatal(err)
		}
		if d != obj["_digest"] {
			t.Errorf("%s: digest %s, vector %s", name, d, obj["_digest"])
		}
		if _, err := audit.VerifyArtifactDigest(a); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		arts = append(arts, a)
	}
	if err := audit.VerifyArtifactChain(arts...); err != nil {
		t.Fatalf("golden chain: %v", err)
	}
	// Tampering with the decision breaks its digest; relinking a wrong
	// parent breaks the chain.
	bad := strings.Replace(string(arts[1]), `"APPROVE"`, `"DENY"`, 1)
	if err := audit.VerifyArtifactChain(arts[0], []byte(bad)); !errors.Is(err, audit.ErrChainBroken) {
		t.Fatalf("tampered decision: %v", err)
	}
	if err := audit.VerifyArtifactChain(arts[0], arts[2]); !errors.Is(err, audit.ErrChainBroken) {
		t.Fatalf("skipped link: %v", err)
	}
}

type vectorEntry struct {
	SequenceNumber  int64   `json:"sequence_number"`
	FromState       string  `json:"from_state"`
	ToState         string  `json:"to_state"`
	ArtifactType    string  `json:"artifact_type"`
	ToolCallID      *string `json:"tool_call_id"`
	IdempotencyKey  *string `json:"idempotency_key"`
	PrevEntryDigest string  `json:"prev_entry_digest"`
}

func (v vectorEntry) entry() audit.ExecutionEntry {
	return audit.ExecutionEntry{Seq: v.SequenceNumber, FromState: v.FromState, ToState: v.ToState,
		ArtifactType: v.ArtifactType, ToolCallID: v.ToolCallID, IdempotencyKey: v.IdempotencyKey}
}

func entries(vs []vectorEntry) []audit.ExecutionEntry {
	out := make([]audit.ExecutionEntry, len(vs))
	for i, v := range vs {
		out[i] = v.entry()
	}
	return out
}

func TestStateTransitionVectors(t *testing.T) {
	var vec struct {
		Valid []struct {
			Description string        `json:"description"`
			Entries     []vectorEntry `json:"entries"`
		} `json:"valid_transitions"`
		Invalid []struct {
			Description   string        `json:"description"`
			Entries       []vectorEntry `json:"entries"`
			ExpectedError string        `json:"expected_error"`
		} `json:"invalid_transitions"`
		Recovery []struct {
			Description    string        `json:"description"`
			InitialLog     []vectorEntry `json:"initial_log"`
			RecoveryAction string        `json:"recovery_action"`
		} `json:"recovery_vectors"`
	}
	if err := json.Unmarshal(testenv.ReadContract(t, "test_vectors/tga/state_transition_vectors.json"), &vec); err != nil {
		t.Fatal(err)
	}
	if len(vec.Valid) != 3 || len(vec.Invalid) != 6 || len(vec.Recovery) != 2 {
		t.Fatalf("vector counts changed: %d %d %d", len(vec.Valid), len(vec.Invalid), len(vec.Recovery))
	}
	for _, c := range vec.Valid {
		t.Run(c.Description, func(t *testing.T) {
			m, err := audit.CheckExecutionLog(entries(c.Entries))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := m.State(), c.Entries[len(c.Entries)-1].ToState; got != want {
				t.Fatalf("state %s, want %s", got, want)
			}
			if g := c.Entries[0].PrevEntryDigest; g != "" && g != audit.GenesisHex {
				t.Fatalf("genesis %q", g)
			}
		})
	}
	for _, c := range vec.Invalid {
		t.Run(c.Description, func(t *testing.T) {
			_, err := audit.CheckExecutionLog(entries(c.Entries))
			if got := contracts.CodeOf(err); string(got) != c.ExpectedError {
				t.Fatalf("error %v, want code %s", err, c.ExpectedError)
			}
		})
	}
	for _, c := range vec.Recovery {
		t.Run(c.Description, func(t *testing.T) {
			m, err := audit.CheckExecutionLog(entries(c.InitialLog))
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Recovery(); got != c.RecoveryAction {
				t.Fatalf("recovery %s, want %s", got, c.RecoveryAction)
			}
			if m.ToolCallID() == "" {
				t.Fatal("no tool call to re-dispatch")
			}
		})
	}
}

func TestExecutionMachineIncremental(t *testing.T) {
	id := "01936a8b-4c2d-7000-8001-000000000001"
	other := "01936a8b-4c2d-7000-8001-000000000002"
	var m audit.ExecutionMachine
	steps := []audit.ExecutionEntry{
		{Seq: 1, FromState: "PENDING", ToState: "PENDING", ArtifactType: "action_request"},
		{Seq: 2, FromState: "PENDING", ToState: "AUTHORIZED", ArtifactType: "supervisor_decision"},
		{Seq: 3, FromState: "AUTHORIZED", ToState: "EXECUTING", ArtifactType: "tool_call", ToolCallID: &id},
	}
	for _, s := range steps {
		if err := m.Apply(s); err != nil {
			t.Fatal(err)
		}
	}
	// A second action_request mid-trace, a wrong tool call, and a
	// from_state that is not the current state are refused and change nothing.
	bad := []audit.ExecutionEntry{
		{Seq: 4, FromState: "PENDING", ToState: "PENDING", ArtifactType: "action_request"},
		{Seq: 4, FromState: "EXECUTING", ToState: "COMPLETED", ArtifactType: "tool_effect", ToolCallID: &other},
		{Seq: 4, FromState: "PENDING", ToState: "DENIED", ArtifactType: "supervisor_decision"},
		{Seq: 4, FromState: "EXECUTING", ToState: "COMPLETED", ArtifactType: "tool_effect"},
	}
	for i, b := range bad {
		if err := m.Apply(b); err == nil {
			t.Fatalf("bad entry %d accepted", i)
		}
		if m.Seq() != 3 || m.State() != "EXECUTING" {
			t.Fatalf("state changed on error: %d %s", m.Seq(), m.State())
		}
	}
	if err := m.Apply(audit.ExecutionEntry{Seq: 4, FromState: "EXECUTING", ToState: "FAILED", ArtifactType: "tool_effect", ToolCallID: &id}); err != nil {
		t.Fatal(err)
	}
	if m.Recovery() != audit.RecoveryReplayOnly {
		t.Fatal(m.Recovery())
	}
}

func TestSessionEventChain(t *testing.T) {
	events := []map[string]any{
		{"schema_id": "talos.a2a.session_event", "schema_version": "v1", "event_id": "01945533-3158-7c85-992d-9865f1715694",
			"session_id": "01945533-3158-7c85-992d-9865f1715600", "actor_id": "alice", "event_type": "session_opened", "ts": "2026-01-11T18:00:00.000Z"},
		{"schema_id": "talos.a2a.session_event", "schema_version": "v1", "event_id": "01945533-3158-7c85-992d-9865f1715695",
			"session_id": "01945533-3158-7c85-992d-9865f1715600", "actor_id": "bob", "event_type": "session_accepted", "ts": "2026-01-11T18:00:01.000Z"},
		{"schema_id": "talos.a2a.session_event", "schema_version": "v1", "event_id": "01945533-3158-7c85-992d-9865f1715696",
			"session_id": "01945533-3158-7c85-992d-9865f1715600", "actor_id": "alice", "event_type": "session_closed", "ts": "2026-01-11T18:00:02.000Z"},
	}
	sealer := audit.NewChain(audit.SessionEventChain)
	var sealed []json.RawMessage
	for _, ev := range events {
		b, d, err := sealer.Seal(ev)
		if err != nil {
			t.Fatal(err)
		}
		// The digest is exactly hex(sha256(JCS(event − event_digest))).
		again, err := audit.ChainDigest(b, "event_digest")
		if err != nil || again != d {
			t.Fatalf("ChainDigest %s %v, Seal %s", again, err, d)
		}
		sealed = append(sealed, b)
	}
	if strings.Contains(string(sealed[0]), "previous_digest") {
		t.Fatal("first event carries previous_digest")
	}
	var second map[string]any
	_ = json.Unmarshal(sealed[1], &second)
	var first map[string]any
	_ = json.Unmarshal(sealed[0], &first)
	if second["previous_digest"] != first["event_digest"] {
		t.Fatal("second event does not link to the first")
	}
	head, err := audit.VerifyChain(audit.SessionEventChain, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if head != sealer.Head() {
		t.Fatalf("head %s, sealer %s", head, sealer.Head())
	}
	// Reordering, dropping and tampering are all detected.
	cases := map[string][]json.RawMessage{
		"swapped":  {sealed[0], sealed[2], sealed[1]},
		"dropped":  {sealed[0], sealed[2]},
		"no start": {sealed[1], sealed[2]},
		"tampered": {sealed[0], json.RawMessage(strings.Replace(string(sealed[1]), "bob", "eve", 1))},
	}
	for name, seq := range cases {
		if _, err := audit.VerifyChain(audit.SessionEventChain, seq); !errors.Is(err, audit.ErrChainBroken) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Verification is transactional.
	c := audit.NewChain(audit.SessionEventChain)
	if err := c.Verify(sealed[1]); err == nil || c.Len() != 0 || c.Head() != "" {
		t.Fatal("failed verify changed the chain")
	}
	// Resume from a stored head.
	r, err := audit.ResumeChain(audit.SessionEventChain, head, 3)
	if err != nil {
		t.Fatal(err)
	}
	if r.Link() != head {
		t.Fatal("resumed link")
	}
}

func TestExecutionLogChainGenesis(t *testing.T) {
	for _, enc := range []audit.DigestEncoding{audit.Hex, audit.Base64URL} {
		spec := audit.ExecutionLogChain
		spec.Encoding = enc
		if enc == audit.Base64URL {
			spec.Genesis = audit.GenesisBase64URL
		}
		c := audit.NewChain(spec)
		e1, _, err := c.Seal(map[string]any{"trace_id": "t", "seq": 1})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(e1), `"prev_entry_digest":"`+spec.Genesis+`"`) {
			t.Fatalf("genesis not set: %s", e1)
		}
		e2, _, err := c.Seal(map[string]any{"trace_id": "t", "seq": 2})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := audit.VerifyChain(spec, []json.RawMessage{e1, e2}); err != nil {
			t.Fatal(err)
		}
		// The other encoding of the same digests verifies too (AcceptBoth).
		other := audit.ExecutionLogChain
		if enc == audit.Hex {
			other.Encoding = audit.Base64URL
		}
		if _, err := audit.VerifyChain(other, []json.RawMessage{e1, e2}); err != nil {
			t.Fatalf("accept both: %v", err)
		}
		// A missing genesis is refused.
		noGen, _ := json.Marshal(map[string]any{"trace_id": "t", "seq": 1, "entry_digest": audit.GenesisHex})
		if _, err := audit.VerifyChain(spec, []json.RawMessage{noGen}); err == nil {
			t.Fatal("entry without genesis accepted")
		}
	}
}

func TestChainDigestInputRules(t *testing.T) {
	bad := []string{`[]`, `{"a":1,"a":2}`, `{"a":9007199254740993}`, `{"a":"\ud800"}`, `{`, `{"a":1} x`}
	for _, b := range bad {
		if _, err := audit.ChainDigest([]byte(b), "d"); !errors.Is(err, contracts.ErrInvalidInput) {
			t.Errorf("%s: %v", b, err)
		}
	}
	// Key order, whitespace and the digest field itself do not matter.
	a, err := audit.ChainDigest([]byte(`{"b":1, "a":"<x>", "d":"zz"}`), "d")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := audit.ChainDigest(map[string]any{"a": "<x>", "b": 1}, "d")
	if a != b {
		t.Fatalf("%s != %s", a, b)
	}
}

func TestVerifyExecutionLog(t *testing.T) {
	id := "01936a8b-4c2d-7000-8001-000000000001"
	steps := []map[string]any{
		{"seq": 1, "from_state": "PENDING", "to_state": "PENDING", "artifact_type": "action_request"},
		{"seq": 2, "from_state": "PENDING", "to_state": "AUTHORIZED", "artifact_type": "supervisor_decision"},
		{"seq": 3, "from_state": "AUTHORIZED", "to_state": "EXECUTING", "artifact_type": "tool_call", "tool_call_id": id},
		{"seq": 4, "from_state": "EXECUTING", "to_state": "COMPLETED", "artifact_type": "tool_effect", "tool_call_id": id},
	}
	c := audit.NewChain(audit.ExecutionLogChain)
	var sealed []json.RawMessage
	for _, s := range steps {
		s["schema_id"] = "talos.tga.execution_log_entry"
		s["trace_id"] = "01936a8b-4c2d-7000-8001-0000000000aa"
		b, _, err := c.Seal(s)
		if err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, b)
	}
	m, err := audit.VerifyExecutionLog(audit.ExecutionLogChain, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if m.State() != "COMPLETED" || m.Recovery() != audit.RecoveryReplayOnly {
		t.Fatal(m.State())
	}
	// A re-sealed entry with a bad transition keeps a valid chain but
	// breaks the machine; a dropped entry breaks the chain.
	c2 := audit.NewChain(audit.ExecutionLogChain)
	var bad []json.RawMessage
	for i, s := range steps {
		if i == 3 {
			s["to_state"] = "AUTHORIZED"
		}
		b, _, _ := c2.Seal(s)
		bad = append(bad, b)
	}
	if _, err := audit.VerifyExecutionLog(audit.ExecutionLogChain, bad); contracts.CodeOf(err) != contracts.CodeStateInvalidTransition {
		t.Fatalf("bad transition: %v", err)
	}
	if _, err := audit.VerifyExecutionLog(audit.ExecutionLogChain, append(sealed[:1:1], sealed[2:]...)); !errors.Is(err, audit.ErrChainBroken) {
		t.Fatalf("dropped entry: %v", err)
	}
}
