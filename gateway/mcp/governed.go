package mcp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// Governed writes: the TGA runtime. With [Config.Governance] set, every
// call to a tool the registry classifies as a write runs as a TGA trace of
// four hash-chained artifacts — action_request, supervisor_decision,
// tool_call, tool_effect — each persisted as an execution log entry
// ([TraceStore]) before the next step is taken. See the package
// documentation, "Governed writes".

// Verdicts a [Supervisor] returns.
const (
	DecisionApprove = "APPROVE"
	DecisionDeny    = "DENY"
	// DecisionPending defers the decision to a human: the action request
	// waits in the approval queue ([Gateway.Approvals], [Gateway.Decide])
	// until someone decides or GovernanceConfig.ApprovalTimeout passes
	// (then it is denied).
	DecisionPending = "PENDING"
)

// Governance defaults.
const (
	DefaultApprovalTimeout = 15 * time.Minute
	DefaultApprovalPoll    = 500 * time.Millisecond
	// MaxRationale bounds a supervisor's rationale (the contract's 2000).
	MaxRationale = 2000
)

// Metadata members written into the artifacts' meta (scalars only, as the
// TGA schemas require).
const (
	metaPrincipal  = "principal"
	metaClientKey  = "client_idempotency_key"
	metaArgsDigest = "args_digest"
	metaScope      = "scope"
	metaCode       = "talos_code"
	metaDecidedBy  = "decided_by"
	metaExpires    = "expires_at"
	// MetaToolCallID is set in the _meta of a governed call forwarded to
	// its upstream, with MetaIdempotencyKey holding the tool call's
	// idempotency key: an upstream that executes a key once makes the
	// re-dispatch after a crash harmless.
	MetaToolCallID = "talos/tool_call_id"
)

// An ActionRequest is what a [Supervisor] decides on.
type ActionRequest struct {
	TraceID    string
	Principal  string // the caller's did:key
	Upstream   string
	Tool       string
	Args       json.RawMessage // canonical
	ArgsDigest string          // lowercase hex SHA-256 of Args
	// IdempotencyKey is the client's key.
	IdempotencyKey string
	RequestedAt    time.Time
	// ExpiresAt is when a pending request is denied.
	ExpiresAt time.Time
}

// A Verdict is a supervisor's answer: Decision is DecisionApprove,
// DecisionDeny or DecisionPending; Rationale (at most MaxRationale bytes)
// is recorded in the supervisor_decision.
type Verdict struct {
	Decision  string
	Rationale string
}

// A Supervisor decides governed writes. Supervise must not block for long:
// a decision that needs a human is DecisionPending. An error refuses the
// call (deny by default) and is recorded as a DENY.
type Supervisor interface {
	Supervise(ctx context.Context, req ActionRequest) (Verdict, error)
}

// SupervisorFunc is a policy function as a Supervisor.
type SupervisorFunc func(ctx context.Context, req ActionRequest) (Verdict, error)

// Supervise implements Supervisor.
func (f SupervisorFunc) Supervise(ctx context.Context, req ActionRequest) (Verdict, error) {
	return f(ctx, req)
}

// HumanApproval is the Supervisor that sends every governed write to the
// approval queue.
var HumanApproval Supervisor = SupervisorFunc(func(context.Context, ActionRequest) (Verdict, error) {
	return Verdict{Decision: DecisionPending}, nil
})

// GovernanceConfig turns governed writes on ([Config.Governance]).
type GovernanceConfig struct {
	// Store persists the traces. Required; use a durable one
	// ([FileTraceStore], gateway/mcp/postgres) for crash recovery.
	Store TraceStore
	// Supervisor decides each action request. Required.
	Supervisor Supervisor
	// ApprovalTimeout is how long a pending request waits for a human
	// (default DefaultApprovalTimeout); the caller's tools/call waits as
	// long, then the request is denied.
	ApprovalTimeout time.Duration
	// Poll is how often a waiting call looks at the store for a decision
	// taken by another replica (default DefaultApprovalPoll).
	Poll time.Duration
	// NoRedispatch compensates instead of re-dispatching after a crash
	// between tool_call and tool_effect: for upstreams that do not honor
	// the idempotency key, the trace ends FAILED (outcome ERROR, "outcome
	// unknown") rather than risk a second execution. The default follows
	// the contract: RE_DISPATCH_SAME_TOOL_CALL with the same key.
	NoRedispatch bool
	// AfterPersist, if set, is called after each entry reached the store
	// (seq 1 to 4) and after a dispatch returned (seq 0), before the next
	// step: tests use it to crash the process between steps.
	AfterPersist func(traceID string, seq int64)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// governance is a gateway's governed-write runtime.
type governance struct {
	cfg GovernanceConfig

	mu      sync.Mutex
	locks   map[string]*traceLock
	waiters map[string][]chan struct{}
}

type traceLock struct {
	mu   sync.Mutex
	refs int
}

func newGovernance(cfg *GovernanceConfig) (*governance, error) {
	if cfg.Store == nil || cfg.Supervisor == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "mcp: Config.Governance needs a Store and a Supervisor")
	}
	c := *cfg
	if c.ApprovalTimeout <= 0 {
		c.ApprovalTimeout = DefaultApprovalTimeout
	}
	if c.Poll <= 0 {
		c.Poll = DefaultApprovalPoll
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &governance{cfg: c, locks: map[string]*traceLock{}, waiters: map[string][]chan struct{}{}}, nil
}

// lock serializes this process's drivers of one trace (other processes
// are kept out by the store's seq check).
func (gv *governance) lock(id string) func() {
	gv.mu.Lock()
	l := gv.locks[id]
	if l == nil {
		l = &traceLock{}
		gv.locks[id] = l
	}
	l.refs++
	gv.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		gv.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(gv.locks, id)
		}
		gv.mu.Unlock()
	}
}

// changed wakes this process's waiters of a trace.
func (gv *governance) changed(id string) {
	gv.mu.Lock()
	ws := gv.waiters[id]
	delete(gv.waiters, id)
	gv.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
}

func (gv *governance) wait(id string) chan struct{} {
	ch := make(chan struct{})
	gv.mu.Lock()
	gv.waiters[id] = append(gv.waiters[id], ch)
	gv.mu.Unlock()
	return ch
}

// unwait forgets a waiter that stopped waiting (a closed one is gone
// already).
func (gv *governance) unwait(id string, ch chan struct{}) {
	gv.mu.Lock()
	defer gv.mu.Unlock()
	ws := gv.waiters[id]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(gv.waiters, id)
	} else {
		gv.waiters[id] = ws
	}
}

func (gv *governance) ts() string { return gv.cfg.Now().UTC().Format("2006-01-02T15:04:05.000Z") }

func (gv *governance) hook(id string, seq int64) {
	if gv.cfg.AfterPersist != nil {
		gv.cfg.AfterPersist(id, seq)
	}
}

func dbErr(err error) error {
	if contracts.CodeOf(err) != "" && !errors.Is(err, ErrTraceConflict) && !errors.Is(err, ErrTraceNotFound) {
		return err
	}
	return contracts.Wrap(contracts.CodeTGADBUnavailable, "mcp: governed trace store failed", err)
}

// A govTrace is a trace as loaded and verified, with its artifacts.
type govTrace struct {
	id        string
	recs      []TraceRecord
	chain     *audit.Chain
	m         *audit.ExecutionMachine
	artifacts []map[string]any // in order: AR, SD, TC, TE
	digests   []string         // their _digest
}

func (t *govTrace) state() string { return t.m.State() }

// loadTrace reads a trace and verifies it: the execution log's hash chain
// and state machine (audit.VerifyExecutionLog), each entry's artifact
// digest, and the artifact chain's links (audit.VerifyArtifactChain).
func (gv *governance) loadTrace(ctx context.Context, id string) (*govTrace, error) {
	recs, err := gv.cfg.Store.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	return verifyTrace(id, recs)
}

func verifyTrace(id string, recs []TraceRecord) (*govTrace, error) {
	entries := make([]json.RawMessage, len(recs))
	for i, r := range recs {
		entries[i] = r.Entry
	}
	m, err := audit.VerifyExecutionLog(audit.ExecutionLogChain, entries)
	if err != nil {
		return nil, err
	}
	t := &govTrace{id: id, recs: recs, m: m}
	var raws [][]byte
	for _, e := range entries {
		var ent struct {
			TraceID        string          `json:"trace_id"`
			ArtifactDigest string          `json:"artifact_digest"`
			ArtifactData   json.RawMessage `json:"artifact_data"`
		}
		if err := json.Unmarshal(e, &ent); err != nil || ent.TraceID != id {
			return nil, contracts.New(contracts.CodeTGAHashChainBroken, "mcp: governed trace entry names another trace")
		}
		d, err := audit.VerifyArtifactDigest(ent.ArtifactData)
		if err != nil {
			return nil, err
		}
		if d != ent.ArtifactDigest {
			return nil, contracts.New(contracts.CodeTGAHashChainBroken, "mcp: entry artifact_digest is not its artifact's")
		}
		var a map[string]any
		dec := json.NewDecoder(strings.NewReader(string(ent.ArtifactData)))
		dec.UseNumber()
		if err := dec.Decode(&a); err != nil {
			return nil, contracts.Wrap(contracts.CodeInvalidInput, "mcp: governed artifact unreadable", err)
		}
		raws = append(raws, ent.ArtifactData)
		t.artifacts = append(t.artifacts, a)
		t.digests = append(t.digests, d)
	}
	if len(raws) > 0 {
		// A denied trace ends at its decision; the artifact chain is the
		// prefix written.
		if err := audit.VerifyArtifactChain(raws...); err != nil {
			return nil, err
		}
	}
	if len(recs) == 0 {
		t.chain = audit.NewChain(audit.ExecutionLogChain)
	} else {
		var last struct {
			EntryDigest string `json:"entry_digest"`
		}
		_ = json.Unmarshal(entries[len(entries)-1], &last)
		if t.chain, err = audit.ResumeChain(audit.ExecutionLogChain, last.EntryDigest, len(recs)); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// seal adds the artifact's _digest and returns it.
func seal(a map[string]any) (string, error) {
	a["_digest_alg"] = "sha256"
	delete(a, "_digest")
	d, err := audit.ChainDigest(a, "_digest")
	if err != nil {
		return "", err
	}
	a["_digest"] = d
	return d, nil
}

// appendStep seals artifact a of type typ as the trace's next entry (to
// state to), persists it and advances t. The store's seq check makes a
// concurrent writer's step win: ErrTraceConflict then.
func (gv *governance) appendStep(ctx context.Context, t *govTrace, typ, idField, to string, a map[string]any, toolCallID, idemKey string, result []byte, scope string) error {
	d, err := seal(a)
	if err != nil {
		return err
	}
	aj, err := json.Marshal(a)
	if err != nil {
		return err
	}
	seq := int64(len(t.recs)) + 1
	e := map[string]any{
		"schema_id": "talos.tga.execution_log_entry", "schema_version": "v1",
		"trace_id": t.id, "seq": seq, "ts": gv.ts(),
		"from_state": t.state(), "to_state": to, "artifact_type": typ,
		"artifact_id": a[idField], "artifact_digest": d, "artifact_data": json.RawMessage(aj),
	}
	if toolCallID != "" {
		e["tool_call_id"] = toolCallID
	}
	if idemKey != "" {
		e["idempotency_key"] = idemKey
	}
	// Check the step against the state machine before it is stored.
	m := *t.m
	ee := audit.ExecutionEntry{Seq: seq, FromState: t.state(), ToState: to, ArtifactType: typ}
	if toolCallID != "" {
		ee.ToolCallID = &toolCallID
	}
	if err := m.Apply(ee); err != nil {
		return err
	}
	chain := *t.chain
	sealed, _, err := chain.Seal(e)
	if err != nil {
		return err
	}
	rec := TraceRecord{TraceID: t.id, Seq: seq, State: to, Entry: sealed, Result: result, Scope: scope}
	if err := gv.cfg.Store.Append(ctx, rec); err != nil {
		return err
	}
	*t.m, *t.chain = m, chain
	t.recs = append(t.recs, rec)
	t.artifacts = append(t.artifacts, a)
	t.digests = append(t.digests, d)
	gv.changed(t.id)
	gv.hook(t.id, seq)
	return nil
}

// arInfo reads the action request back.
type arInfo struct {
	req    ActionRequest
	scope  string
	planID string
	tcKey  string // the tool call's idempotency key
}

func metaString(a map[string]any, k string) string {
	m, _ := a["meta"].(map[string]any)
	s, _ := m[k].(string)
	return s
}

func (t *govTrace) actionRequest() (arInfo, error) {
	if len(t.artifacts) == 0 {
		return arInfo{}, contracts.New(contracts.CodeStateInvalidTransition, "mcp: governed trace has no action request")
	}
	a := t.artifacts[0]
	p, _ := a["proposal"].(map[string]any)
	up, _ := p["tool_server"].(string)
	tool, _ := p["tool_name"].(string)
	args, err := json.Marshal(p["args"])
	if err != nil {
		return arInfo{}, err
	}
	canon, err := contracts.Canonicalize(args)
	if err != nil {
		return arInfo{}, err
	}
	ts, _ := a["ts"].(string)
	at, _ := time.Parse("2006-01-02T15:04:05.000Z", ts)
	exp, _ := time.Parse(time.RFC3339Nano, metaString(a, metaExpires))
	planID, _ := a["plan_id"].(string)
	key, _ := a["idempotency_key"].(string)
	return arInfo{
		req: ActionRequest{
			TraceID: t.id, Principal: metaString(a, metaPrincipal), Upstream: up, Tool: tool,
			Args: canon, ArgsDigest: metaString(a, metaArgsDigest), IdempotencyKey: metaString(a, metaClientKey),
			RequestedAt: at, ExpiresAt: exp,
		},
		scope: t.recs[0].Scope, planID: planID, tcKey: key,
	}, nil
}

// agentID is a stable UUID-shaped id of a principal (the schemas want a
// UUID; the did:key itself is in meta.principal).
func agentID(did string) string {
	s := sha256.Sum256([]byte("talos agent id\x00" + did))
	s[6] = s[6]&0x0f | 0x80 // version 8: custom
	s[8] = s[8]&0x3f | 0x80
	h := hex.EncodeToString(s[:16])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// governedCall runs one governed write of a live tools/call (inside the
// Kernel's decision, after the idempotency key was claimed as scope): a
// trace already made for scope is followed, not repeated; otherwise the
// action request is recorded, decided, executed and its effect recorded.
// It returns when the trace is terminal.
func (g *Gateway) governedCall(ctx context.Context, did identity.DID, tok, upstream, tool, digest, clientKey, scope string, canon []byte) (*sdk.CallToolResult, error) {
	gv := g.gov
	if res, err := g.governedReplay(ctx, scope); !errors.Is(err, ErrTraceNotFound) {
		return res, err
	}
	now := gv.cfg.Now().UTC()
	id := contracts.NewUUIDv7()
	t, _ := verifyTrace(id, nil)
	ar := map[string]any{
		"schema_id": "talos.tga.action_request", "schema_version": "tga.v1",
		"trace_id": id, "plan_id": contracts.NewUUIDv7(), "action_request_id": contracts.NewUUIDv7(),
		"agent_id": agentID(did.String()), "ts": now.Format("2006-01-02T15:04:05.000Z"),
		"risk_level": "WRITE", "intent": "call the write tool " + upstream + "." + tool,
		"resources":       []any{map[string]any{"kind": "service", "id": upstream}},
		"proposal":        map[string]any{"tool_server": upstream, "tool_name": tool, "args": json.RawMessage(canon)},
		"idempotency_key": contracts.NewUUIDv7(),
		"meta": map[string]any{
			metaPrincipal: did.String(), metaClientKey: clientKey, metaArgsDigest: digest,
			metaExpires:       now.Add(gv.cfg.ApprovalTimeout).Format(time.RFC3339Nano),
			"capability_hash": capHash(tok),
		},
	}
	unlock := gv.lock(id)
	err := gv.appendStep(ctx, t, audit.ArtifactActionRequest, "action_request_id", audit.StatePending, ar, "", "", nil, scope)
	if err != nil {
		unlock()
		if errors.Is(err, ErrTraceConflict) {
			// Another replica made the trace for this scope first.
			if res, err := g.governedReplay(ctx, scope); !errors.Is(err, ErrTraceNotFound) {
				return res, err
			}
		}
		return nil, dbErr(err)
	}
	// The steps after the action request run to the end even if the
	// client goes away: a half-done trace is recovery's work.
	dctx := context.WithoutCancel(ctx)
	err = g.drive(dctx, t, tok)
	unlock()
	if err != nil {
		return nil, err
	}
	return g.awaitTrace(ctx, id)
}

// governedArgs marks a call as governed.
type governedArgs struct{ tok string }

// governedReplay answers a call whose scope already has a trace: a
// terminal trace's outcome (stored under the key again), a pending one's
// after its decision; a trace mid-execution is REPLAY_DETECTED (recovery
// finishes it). ErrTraceNotFound when the scope has no trace.
func (g *Gateway) governedReplay(ctx context.Context, scope string) (*sdk.CallToolResult, error) {
	id, err := g.gov.cfg.Store.ByScope(ctx, scope)
	if errors.Is(err, ErrTraceNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, dbErr(err)
	}
	t, err := g.gov.loadTrace(ctx, id)
	if err != nil {
		return nil, dbErr(err)
	}
	switch {
	case terminal(t.state()):
		if ar, err := t.actionRequest(); err == nil {
			g.completeIdem(context.WithoutCancel(ctx), t, ar)
		}
		res, err := t.outcome()
		if res != nil {
			if res.Meta == nil {
				res.Meta = sdk.Meta{}
			}
			res.Meta[MetaReplayed] = true
		}
		return res, err
	case t.state() == audit.StatePending:
		return g.awaitTrace(ctx, id)
	}
	return nil, contracts.New(contracts.CodeReplayDetected, "mcp: a call with this idempotency key is in flight")
}

// capHash is the hex SHA-256 of a capability token (never the token).
func capHash(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

// drive advances t (locked by the caller) as far as it can go now: a
// pending request is asked of the supervisor (a pending verdict, or one
// given already, stops there until a human decides), an authorized one is
// executed, and a tool call without effect is re-dispatched (or
// compensated). tok is the capability of a live call ("" in recovery).
func (g *Gateway) drive(ctx context.Context, t *govTrace, tok string) error {
	gv := g.gov
	for {
		ar, err := t.actionRequest()
		if err != nil {
			return err
		}
		switch t.state() {
		case audit.StatePending:
			v, err := gv.cfg.Supervisor.Supervise(ctx, ar.req)
			if err != nil {
				v = Verdict{Decision: DecisionDeny, Rationale: "supervisor failed"}
			}
			if v.Decision == DecisionPending {
				if gv.cfg.Now().Before(ar.req.ExpiresAt) {
					return nil
				}
				v = Verdict{Decision: DecisionDeny, Rationale: "approval timed out"}
			}
			if err := g.decide(ctx, t, v, "supervisor"); err != nil {
				return err
			}
		case audit.StateAuthorized:
			if err := g.execute(ctx, t, ar, tok); err != nil {
				return err
			}
		case audit.StateExecuting:
			if err := g.redispatch(ctx, t, ar); err != nil {
				return err
			}
		default:
			g.completeIdem(ctx, t, ar)
			return nil
		}
	}
}

// decide records the supervisor_decision of a pending trace.
func (g *Gateway) decide(ctx context.Context, t *govTrace, v Verdict, by string) error {
	to := audit.StateAuthorized
	switch v.Decision {
	case DecisionApprove:
	case DecisionDeny:
		to = audit.StateDenied
	default:
		return contracts.New(contracts.CodeInvalidInput, "mcp: a supervisor decision is APPROVE or DENY")
	}
	if len(v.Rationale) > MaxRationale {
		v.Rationale = v.Rationale[:MaxRationale]
	}
	ar := t.artifacts[0]
	sd := map[string]any{
		"schema_id": "talos.tga.supervisor_decision", "schema_version": "tga.v1",
		"trace_id": t.id, "plan_id": ar["plan_id"], "supervisor_decision_id": contracts.NewUUIDv7(),
		"action_request_id": ar["action_request_id"], "action_request_digest": t.digests[0],
		"ts": g.gov.ts(), "decision": v.Decision,
		"meta": map[string]any{metaDecidedBy: by},
	}
	if v.Rationale != "" {
		sd["rationale"] = v.Rationale
	}
	return g.gov.appendStep(ctx, t, audit.ArtifactSupervisorDecision, "supervisor_decision_id", to, sd, "", "", nil, "")
}

// execute records the tool_call of an authorized trace, dispatches it and
// records its effect.
func (g *Gateway) execute(ctx context.Context, t *govTrace, ar arInfo, tok string) error {
	a := t.artifacts[0]
	sd := t.artifacts[1]
	tcID := contracts.NewUUIDv7()
	capDigest := metaString(a, "capability_hash")
	if tok != "" {
		capDigest = capHash(tok)
	}
	tc := map[string]any{
		"schema_id": "talos.tga.tool_call", "schema_version": "tga.v1",
		"trace_id": t.id, "plan_id": a["plan_id"], "tool_call_id": tcID,
		"supervisor_decision_id": sd["supervisor_decision_id"], "supervisor_decision_digest": t.digests[1],
		"capability_digest": capDigest, "args_digest": ar.req.ArgsDigest, "ts": g.gov.ts(),
		"call":       map[string]any{"tool_server": ar.req.Upstream, "tool_name": ar.req.Tool, "args": json.RawMessage(ar.req.Args)},
		"tool_class": "write", "idempotency_key": ar.tcKey,
	}
	if err := g.gov.appendStep(ctx, t, audit.ArtifactToolCall, "tool_call_id", audit.StateExecuting, tc, tcID, ar.tcKey, nil, ""); err != nil {
		return err
	}
	return g.dispatch(ctx, t, ar, tcID)
}

// redispatch recovers a trace that ends in its tool_call: the same call
// again with the same idempotency key (RE_DISPATCH_SAME_TOOL_CALL), or,
// with NoRedispatch, an ERROR effect.
func (g *Gateway) redispatch(ctx context.Context, t *govTrace, ar arInfo) error {
	tcID := t.m.ToolCallID()
	if g.gov.cfg.NoRedispatch {
		return g.effect(ctx, t, tcID, nil, contracts.New(contracts.CodeInternal, "outcome unknown: the gateway stopped during the call; not re-dispatched"))
	}
	return g.dispatch(ctx, t, ar, tcID)
}

// dispatch forwards the tool call and records its effect. A call that
// could not be sent (upstream unreachable) leaves the trace EXECUTING for
// a later recovery, unless the tool is no longer served (FAILED).
func (g *Gateway) dispatch(ctx context.Context, t *govTrace, ar arInfo, tcID string) error {
	entry, _ := g.st.Load().registry.Lookup(ar.req.Upstream, ar.req.Tool)
	meta := map[string]any{MetaIdempotencyKey: ar.tcKey, MetaToolCallID: tcID}
	res, err := g.forwardMeta(ctx, ar.req.Upstream, ar.req.Tool, ar.req.Args, entry.Doc, meta)
	g.gov.hook(t.id, 0)
	if err != nil && errors.Is(err, errNotSent) && contracts.CodeOf(err) != contracts.CodeDenied {
		return err
	}
	return g.effect(ctx, t, tcID, res, err)
}

// effect records the tool_effect: SUCCESS, FAILURE (the tool reported an
// error) or ERROR (the call failed; its contract code in meta).
func (g *Gateway) effect(ctx context.Context, t *govTrace, tcID string, res *sdk.CallToolResult, callErr error) error {
	a := t.artifacts[0]
	status, to, summary := "SUCCESS", audit.StateCompleted, ""
	meta := map[string]any{}
	var result []byte
	switch {
	case callErr != nil:
		status, to = "ERROR", audit.StateFailed
		code := contracts.CodeOf(callErr)
		if code == "" {
			code = contracts.CodeInternal
		}
		meta[metaCode] = string(code)
		summary = "the call failed: " + string(code)
	default:
		b, err := json.Marshal(res)
		if err != nil {
			return err
		}
		result = b
		if res.IsError {
			status, to = "FAILURE", audit.StateFailed
		}
		sum := sha256.Sum256(b)
		meta["result_sha256"] = hex.EncodeToString(sum[:])
		summary = "result of " + strconv.Itoa(len(b)) + " bytes"
	}
	te := map[string]any{
		"schema_id": "talos.tga.tool_effect", "schema_version": "tga.v1",
		"trace_id": t.id, "plan_id": a["plan_id"], "tool_effect_id": contracts.NewUUIDv7(),
		"tool_call_id": tcID, "tool_call_digest": t.digests[2], "ts": g.gov.ts(),
		"outcome": map[string]any{"status": status, "summary": summary},
		"meta":    meta,
	}
	key, _ := t.artifacts[2]["idempotency_key"].(string)
	return g.gov.appendStep(ctx, t, audit.ArtifactToolEffect, "tool_effect_id", to, te, tcID, key, result, "")
}

// outcome is a terminal trace's answer to its caller.
func (t *govTrace) outcome() (*sdk.CallToolResult, error) {
	switch t.state() {
	case audit.StateDenied:
		return nil, contracts.New(contracts.CodePolicyDenied, "mcp: the supervisor denied the call")
	case audit.StateCompleted, audit.StateFailed:
		last := t.recs[len(t.recs)-1]
		if code := metaString(t.artifacts[len(t.artifacts)-1], metaCode); code != "" {
			return nil, contracts.New(contracts.Code(code), "mcp: the governed call failed")
		}
		var res sdk.CallToolResult
		if err := json.Unmarshal(last.Result, &res); err != nil {
			return nil, contracts.Wrap(contracts.CodeInternal, "mcp: stored result unreadable", err)
		}
		return &res, nil
	}
	return nil, nil
}

// completeIdem stores a terminal trace's outcome under its idempotency
// scope, so that a client's retry with the same key is answered from it.
func (g *Gateway) completeIdem(ctx context.Context, t *govTrace, ar arInfo) {
	if ar.scope == "" {
		return
	}
	res, err := t.outcome()
	rec := IdempotencyRecord{Digest: ar.req.ArgsDigest, Done: true}
	if err != nil {
		rec.Code = string(contracts.CodeOf(err))
	} else if res != nil {
		b, _ := json.Marshal(res)
		rec.Result = b
		if len(b) > MaxRememberedResult {
			rec.Result, rec.Code = nil, string(contracts.CodeReplayDetected)
		}
	}
	_ = g.idem.Complete(ctx, ar.scope, rec)
}

// awaitTrace waits until trace id is terminal and returns its outcome:
// while it is pending it looks at the store every Poll (a human may decide
// on another replica), and when its approval time is up it records the
// denial itself. A context that ends first refuses the call
// (UPSTREAM_TIMEOUT); the trace goes on without it.
func (g *Gateway) awaitTrace(ctx context.Context, id string) (*sdk.CallToolResult, error) {
	gv := g.gov
	for {
		ch := gv.wait(id)
		t, err := gv.loadTrace(ctx, id)
		if err != nil {
			gv.unwait(id, ch)
			return nil, dbErr(err)
		}
		if terminal(t.state()) {
			gv.unwait(id, ch)
			return t.outcome()
		}
		if t.state() == audit.StatePending {
			if ar, err := t.actionRequest(); err == nil && !gv.cfg.Now().Before(ar.req.ExpiresAt) {
				unlock := gv.lock(id)
				if t, err = gv.loadTrace(ctx, id); err == nil && t.state() == audit.StatePending {
					err = g.decide(context.WithoutCancel(ctx), t, Verdict{Decision: DecisionDeny, Rationale: "approval timed out"}, "timeout")
					if err == nil {
						g.completeIdem(ctx, t, ar)
					}
				}
				unlock()
				gv.unwait(id, ch)
				if err != nil && !errors.Is(err, ErrTraceConflict) {
					return nil, dbErr(err)
				}
				continue
			}
		}
		timer := time.NewTimer(gv.cfg.Poll)
		select {
		case <-ch:
		case <-timer.C:
			gv.unwait(id, ch)
		case <-ctx.Done():
			timer.Stop()
			gv.unwait(id, ch)
			return nil, errors.Join(errGovernedRunning, contracts.New(contracts.CodeUpstreamTimeout, "mcp: the governed call is still waiting for its decision"))
		}
		timer.Stop()
	}
}

// errGovernedRunning marks a governed call its caller stopped waiting for:
// its idempotency key stays in flight until the trace ends.
var errGovernedRunning = errors.New("mcp: governed call still running")

// An Approval is a governed write waiting for a human decision.
type Approval struct {
	ID          string    `json:"id"` // the trace id
	Principal   string    `json:"principal"`
	Tool        string    `json:"tool"` // "<upstream>.<tool>"
	ArgsDigest  string    `json:"args_digest"`
	RequestedAt time.Time `json:"requested_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	State       string    `json:"state"`
}

func approvalOf(t *govTrace) (Approval, error) {
	ar, err := t.actionRequest()
	if err != nil {
		return Approval{}, err
	}
	return Approval{ID: t.id, Principal: ar.req.Principal, Tool: ar.req.Upstream + "." + ar.req.Tool,
		ArgsDigest: ar.req.ArgsDigest, RequestedAt: ar.req.RequestedAt, ExpiresAt: ar.req.ExpiresAt, State: t.state()}, nil
}

// ErrNotGoverned is returned by the governance methods of a gateway
// without Config.Governance (NOT_FOUND).
var ErrNotGoverned = contracts.NewSentinel(contracts.CodeNotFound, "mcp: governed writes are not enabled")

// Approvals lists up to limit pending action requests with trace id after
// the cursor, by id, and whether more follow.
func (g *Gateway) Approvals(ctx context.Context, after string, limit int) ([]Approval, bool, error) {
	if g.gov == nil {
		return nil, false, ErrNotGoverned
	}
	sums, err := g.gov.cfg.Store.Open(ctx, audit.StatePending, after, limit+1)
	if err != nil {
		return nil, false, dbErr(err)
	}
	more := len(sums) > limit
	if more {
		sums = sums[:limit]
	}
	out := []Approval{}
	for _, s := range sums {
		t, err := g.gov.loadTrace(ctx, s.TraceID)
		if err != nil {
			return nil, false, dbErr(err)
		}
		a, err := approvalOf(t)
		if err != nil {
			return nil, false, err
		}
		out = append(out, a)
	}
	return out, more, nil
}

// Decide records a human's decision on pending trace id (approve or deny,
// with reason and the deciding admin in the supervisor_decision); an
// approved call is then executed, in the background, by this gateway
// (the caller waiting on another replica sees it through the store). A
// trace that is not pending is STATE_INVALID_TRANSITION (409); an unknown
// one NOT_FOUND.
func (g *Gateway) Decide(ctx context.Context, id string, approve bool, reason, by string) (Approval, error) {
	if g.gov == nil {
		return Approval{}, ErrNotGoverned
	}
	if len(reason) > MaxRationale {
		return Approval{}, contracts.New(contracts.CodeInvalidInput, "mcp: reason longer than 2000 bytes")
	}
	unlock := g.gov.lock(id)
	defer unlock()
	t, err := g.gov.loadTrace(ctx, id)
	if errors.Is(err, ErrTraceNotFound) {
		return Approval{}, contracts.New(contracts.CodeNotFound, "mcp: no such approval")
	}
	if err != nil {
		return Approval{}, dbErr(err)
	}
	if t.state() != audit.StatePending {
		return Approval{}, contracts.New(contracts.CodeStateInvalidTransition, "mcp: the action request is not pending")
	}
	ar, err := t.actionRequest()
	if err != nil {
		return Approval{}, err
	}
	v := Verdict{Decision: DecisionDeny, Rationale: reason}
	if approve {
		v.Decision = DecisionApprove
	}
	if !g.gov.cfg.Now().Before(ar.req.ExpiresAt) {
		v = Verdict{Decision: DecisionDeny, Rationale: "approval timed out"}
		by = "timeout"
	}
	if err := g.decide(context.WithoutCancel(ctx), t, v, by); err != nil {
		if errors.Is(err, ErrTraceConflict) {
			return Approval{}, contracts.New(contracts.CodeStateInvalidTransition, "mcp: the action request was decided concurrently")
		}
		return Approval{}, dbErr(err)
	}
	a, _ := approvalOf(t)
	if t.state() == audit.StateDenied {
		g.completeIdem(ctx, t, ar)
		return a, nil
	}
	g.mu.Lock()
	closed := g.closed
	if !closed {
		g.wg.Add(1)
	}
	g.mu.Unlock()
	if closed {
		return a, nil // recovery executes it at the next start
	}
	go func() {
		defer g.wg.Done()
		unlock := g.gov.lock(id)
		defer unlock()
		dctx, cancel := context.WithTimeout(context.Background(), g.cfg.ConnectTimeout+g.cfg.CallTimeout+10*time.Second)
		defer cancel()
		if t, err := g.gov.loadTrace(dctx, id); err == nil {
			_ = g.drive(dctx, t, "")
		}
	}()
	return a, nil
}

// TraceEntries returns the stored execution log entries of trace id, for
// audit.VerifyExecutionLog(audit.ExecutionLogChain, entries).
func (g *Gateway) TraceEntries(ctx context.Context, id string) ([]json.RawMessage, error) {
	if g.gov == nil {
		return nil, ErrNotGoverned
	}
	recs, err := g.gov.cfg.Store.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, len(recs))
	for i, r := range recs {
		out[i] = r.Entry
	}
	return out, nil
}

// A Recovered reports what [Gateway.Recover] did with one trace.
type Recovered struct {
	TraceID string
	// Action is the contract's recovery action for the trace as found
	// (audit.RecoveryNone, RecoveryRedispatch, RecoveryReplayOnly), or
	// "RESUME" for an authorized trace whose tool call was not recorded
	// and "SUPERVISE" for a pending one asked again.
	Action string
	State  string // after recovery
	Err    error
	// Principal (did:key), Upstream and Tool of the trace's call, for the
	// caller's records (the Kernel audited the original call only if it
	// returned before the crash).
	Principal, Upstream, Tool string
}

// Recover finishes the governed writes a crash interrupted, per the
// contract's recovery rules, without executing anything twice that the
// log says ran: a pending request is asked of the supervisor again (still
// pending: it stays in the approval queue; expired: denied), an
// authorized one is executed, one ending in its tool_call is re-dispatched
// with the same idempotency key (or compensated, NoRedispatch), and a
// terminal one only has its outcome stored for the client's retry
// (REPLAY_ONLY_NO_DISPATCH). Traces whose log does not verify are
// reported (TGA_HASH_CHAIN_BROKEN, STATE_*) and left alone. Call it at
// start-up, after New.
func (g *Gateway) Recover(ctx context.Context) ([]Recovered, error) {
	if g.gov == nil {
		return nil, ErrNotGoverned
	}
	var out []Recovered
	after := ""
	for {
		sums, err := g.gov.cfg.Store.Open(ctx, "", after, 100)
		if err != nil {
			return out, dbErr(err)
		}
		if len(sums) == 0 {
			return out, nil
		}
		for _, s := range sums {
			after = s.TraceID
			out = append(out, g.recoverOne(ctx, s.TraceID))
		}
	}
}

func (g *Gateway) recoverOne(ctx context.Context, id string) Recovered {
	unlock := g.gov.lock(id)
	defer unlock()
	r := Recovered{TraceID: id}
	t, err := g.gov.loadTrace(ctx, id)
	if err != nil {
		r.Err = err
		return r
	}
	r.Action = t.m.Recovery()
	if ar, err := t.actionRequest(); err == nil {
		r.Principal, r.Upstream, r.Tool = ar.req.Principal, ar.req.Upstream, ar.req.Tool
	}
	switch t.state() {
	case audit.StatePending:
		r.Action = "SUPERVISE"
	case audit.StateAuthorized:
		r.Action = "RESUME"
	}
	r.Err = g.drive(ctx, t, "")
	r.State = t.state()
	return r
}

// governedWrite reports whether a call to entry is governed.
func (g *Gateway) governedWrite(entry capability.ToolEntry) bool {
	return g.gov != nil && entry.Class == capability.ClassWrite
}
