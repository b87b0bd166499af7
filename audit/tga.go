package audit

import (
	"encoding/json"
	"strconv"

	"github.com/talosgo/talos/contracts"
)

// States of a TGA execution (execution_log_entry.schema.json).
const (
	StatePending    = "PENDING"
	StateAuthorized = "AUTHORIZED"
	StateExecuting  = "EXECUTING"
	StateCompleted  = "COMPLETED"
	StateFailed     = "FAILED"
	StateDenied     = "DENIED"
)

// Artifact types that drive TGA transitions.
const (
	ArtifactActionRequest      = "action_request"
	ArtifactSupervisorDecision = "supervisor_decision"
	ArtifactToolCall           = "tool_call"
	ArtifactToolEffect         = "tool_effect"
)

// Errors of the TGA state machine; each matches (errors.Is) every error of
// its contract code.
var (
	ErrInvalidTransition = contracts.NewSentinel(contracts.CodeStateInvalidTransition, "")
	ErrSequenceGap       = contracts.NewSentinel(contracts.CodeStateSequenceGap, "")
	ErrMissingToolCallID = contracts.NewSentinel(contracts.CodeMissingToolCallID, "")
)

// An ExecutionEntry is the part of a TGA execution log entry that the state
// machine reads. Its JSON names follow execution_log_entry.schema.json.
type ExecutionEntry struct {
	Seq            int64   `json:"seq"`
	FromState      string  `json:"from_state"`
	ToState        string  `json:"to_state"`
	ArtifactType   string  `json:"artifact_type"`
	ToolCallID     *string `json:"tool_call_id,omitempty"`
	IdempotencyKey *string `json:"idempotency_key,omitempty"`
}

type transition struct{ artifact, from, to string }

// transitions is the contract table: the only allowed (artifact, from, to).
var transitions = map[transition]bool{
	{ArtifactActionRequest, StatePending, StatePending}:         true,
	{ArtifactSupervisorDecision, StatePending, StateAuthorized}: true,
	{ArtifactSupervisorDecision, StatePending, StateDenied}:     true,
	{ArtifactToolCall, StateAuthorized, StateExecuting}:         true,
	{ArtifactToolEffect, StateExecuting, StateCompleted}:        true,
	{ArtifactToolEffect, StateExecuting, StateFailed}:           true,
}

// An ExecutionMachine replays one trace's execution log entry by entry. Its
// zero value is a trace before its first entry (state PENDING, seq 0). It is
// not safe for concurrent use.
type ExecutionMachine struct {
	state      string
	seq        int64
	toolCallID string
	last       string // artifact type of the last entry
}

// State returns the current state (PENDING before the first entry).
func (m *ExecutionMachine) State() string {
	if m.state == "" {
		return StatePending
	}
	return m.state
}

// Seq returns the sequence number of the last applied entry (0 if none).
func (m *ExecutionMachine) Seq() int64 { return m.seq }

// Apply checks e against the machine and, if it is valid, advances. Checks,
// in order: seq is exactly the previous seq + 1 (STATE_SEQUENCE_GAP);
// (artifact_type, from_state, to_state) is in the contract table, from_state
// is the current state, and action_request only opens a trace
// (STATE_INVALID_TRANSITION); tool_call and tool_effect carry a non-null
// tool_call_id (MISSING_TOOL_CALL_ID), and a tool_effect names the
// executing tool call (STATE_INVALID_TRANSITION). On error the machine is
// unchanged.
func (m *ExecutionMachine) Apply(e ExecutionEntry) error {
	if err := m.checkSeq(e); err != nil {
		return err
	}
	if err := m.checkTransition(e); err != nil {
		return err
	}
	if err := m.checkToolCall(e); err != nil {
		return err
	}
	m.advance(e)
	return nil
}

func (m *ExecutionMachine) checkSeq(e ExecutionEntry) error {
	if e.Seq != m.seq+1 {
		return stateErr(contracts.CodeStateSequenceGap, e,
			"seq "+strconv.FormatInt(e.Seq, 10)+" does not follow "+strconv.FormatInt(m.seq, 10))
	}
	return nil
}

func (m *ExecutionMachine) checkTransition(e ExecutionEntry) error {
	if !transitions[transition{e.ArtifactType, e.FromState, e.ToState}] {
		return stateErr(contracts.CodeStateInvalidTransition, e,
			e.ArtifactType+" may not move "+e.FromState+" to "+e.ToState)
	}
	if e.FromState != m.State() {
		return stateErr(contracts.CodeStateInvalidTransition, e,
			"from_state "+e.FromState+" is not the current state "+m.State())
	}
	if (e.ArtifactType == ArtifactActionRequest) != (m.seq == 0) {
		return stateErr(contracts.CodeStateInvalidTransition, e, "action_request must be exactly the first entry")
	}
	return nil
}

func (m *ExecutionMachine) checkToolCall(e ExecutionEntry) error {
	if e.ArtifactType != ArtifactToolCall && e.ArtifactType != ArtifactToolEffect {
		return nil
	}
	if e.ToolCallID == nil || *e.ToolCallID == "" {
		return stateErr(contracts.CodeMissingToolCallID, e, e.ArtifactType+" entry has no tool_call_id")
	}
	if e.ArtifactType == ArtifactToolEffect && m.toolCallID != "" && *e.ToolCallID != m.toolCallID {
		return stateErr(contracts.CodeStateInvalidTransition, e, "tool_effect names another tool call")
	}
	return nil
}

func (m *ExecutionMachine) advance(e ExecutionEntry) {
	m.seq = e.Seq
	m.state = e.ToState
	m.last = e.ArtifactType
	if e.ArtifactType == ArtifactToolCall && e.ToolCallID != nil {
		m.toolCallID = *e.ToolCallID
	}
}

func stateErr(code contracts.Code, e ExecutionEntry, msg string) error {
	return &contracts.Error{Code: code, Message: "audit: tga entry seq " + strconv.FormatInt(e.Seq, 10) + ": " + msg,
		Details: map[string]any{"seq": e.Seq}}
}

// CheckExecutionLog validates a whole trace's entries. It reports the first
// error of the most structural class: sequence errors over the whole log
// first, then transition errors, then missing tool_call_id. (A log can
// break several rules at once; the contract vectors expect this order.)
// It returns the machine after the last entry.
func CheckExecutionLog(entries []ExecutionEntry) (*ExecutionMachine, error) {
	if len(entries) > MaxExecutionEntries {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit: tga execution log too long")
	}
	var seqs ExecutionMachine
	for _, e := range entries {
		if err := seqs.checkSeq(e); err != nil {
			return nil, err
		}
		seqs.seq = e.Seq
	}
	var trans ExecutionMachine
	for _, e := range entries {
		if err := trans.checkTransition(e); err != nil {
			return nil, err
		}
		trans.advance(e)
	}
	m := new(ExecutionMachine)
	for _, e := range entries {
		if err := m.Apply(e); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Recovery actions of the TGA runtime after a crash.
const (
	// RecoveryNone: the trace is not mid-execution (empty, pending,
	// authorized or denied); nothing to recover.
	RecoveryNone = "NONE"
	// RecoveryRedispatch: the log ends in a tool_call with no effect;
	// dispatch the same tool call again with its idempotency key.
	RecoveryRedispatch = "RE_DISPATCH_SAME_TOOL_CALL"
	// RecoveryReplayOnly: the log ends in a tool_effect; rebuild the state
	// from the log and do not dispatch.
	RecoveryReplayOnly = "REPLAY_ONLY_NO_DISPATCH"
)

// Recovery returns the recovery action for the machine's trace.
func (m *ExecutionMachine) Recovery() string {
	switch m.last {
	case ArtifactToolCall:
		return RecoveryRedispatch
	case ArtifactToolEffect:
		return RecoveryReplayOnly
	}
	return RecoveryNone
}

// ToolCallID returns the tool_call_id of the trace's tool call ("" before
// the tool_call entry): the call to re-dispatch under RecoveryRedispatch.
func (m *ExecutionMachine) ToolCallID() string { return m.toolCallID }

// VerifyExecutionLog verifies a TGA trace's execution log as stored: the
// hash chain (entry_digest recomputes, prev_entry_digest links, genesis of
// 32 zero bytes in hex or base64url) under spec (usually
// [ExecutionLogChain]), and the state machine over the entries' seq,
// from_state, to_state, artifact_type and tool_call_id. It returns the
// machine after the last entry.
func VerifyExecutionLog(spec ChainSpec, entries []json.RawMessage) (*ExecutionMachine, error) {
	if len(entries) > MaxExecutionEntries {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit: tga execution log too long")
	}
	chain := NewChain(spec)
	parsed := make([]ExecutionEntry, len(entries))
	for i, raw := range entries {
		if err := chain.Verify(raw); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, &parsed[i]); err != nil {
			return nil, contracts.Wrap(contracts.CodeInvalidInput, "audit: tga entry fields have the wrong types", err)
		}
	}
	return CheckExecutionLog(parsed)
}
