package a2a

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// JSON-RPC 2.0 error codes used by the handler.
const (
	RPCParseError     = -32700
	RPCInvalidRequest = -32600
	RPCMethodNotFound = -32601
	RPCInvalidParams  = -32602
	RPCInternalError  = -32603
	// RPCDomainError carries a Talos contract code in data.talos_code.
	RPCDomainError = -32000
)

// Tool is the capability tool every A2A scope is granted under.
const Tool = "a2a"

// A Method describes one JSON-RPC method of the A2A v1 surface.
type Method struct {
	// Name is the v1 method name; Aliases are the older spellings.
	Name    string
	Aliases []string
	// Scopes are the capability actions (under Tool) the caller needs.
	Scopes []string
	// Stream marks methods answered with a server-sent event stream.
	Stream bool
}

// Methods is the v1 method table of inventory/gateway_surface.json
// (surface a2a.v1.rpc).
var Methods = []Method{
	{Name: "GetExtendedAgentCard", Aliases: []string{"agent/getAuthenticatedExtendedCard"}, Scopes: []string{"a2a.discovery.read"}},
	{Name: "SendMessage", Aliases: []string{"message.send", "message/send"}, Scopes: []string{"a2a.send"}},
	{Name: "SendStreamingMessage", Aliases: []string{"message.stream", "message/stream"}, Scopes: []string{"a2a.send", "a2a.subscribe"}, Stream: true},
	{Name: "GetTask", Aliases: []string{"tasks.get", "tasks/get"}, Scopes: []string{"a2a.get"}},
	{Name: "CancelTask", Aliases: []string{"tasks.cancel", "tasks/cancel"}, Scopes: []string{"a2a.cancel"}},
	{Name: "ListTasks", Aliases: []string{"tasks.list", "tasks/list"}, Scopes: []string{"a2a.list"}},
	{Name: "SubscribeToTask", Aliases: []string{"tasks.resubscribe", "tasks/resubscribe"}, Scopes: []string{"a2a.subscribe"}, Stream: true},
	{Name: "CreateTaskPushNotificationConfig", Aliases: []string{"tasks.pushNotificationConfig.set", "tasks/pushNotificationConfig/set"}, Scopes: []string{"a2a.push_config.write"}},
	{Name: "GetTaskPushNotificationConfig", Aliases: []string{"tasks.pushNotificationConfig.get", "tasks/pushNotificationConfig/get"}, Scopes: []string{"a2a.push_config.read"}},
	{Name: "ListTaskPushNotificationConfigs", Aliases: []string{"tasks.pushNotificationConfig.list", "tasks/pushNotificationConfig/list"}, Scopes: []string{"a2a.push_config.read"}},
	{Name: "DeleteTaskPushNotificationConfig", Aliases: []string{"tasks.pushNotificationConfig.delete", "tasks/pushNotificationConfig/delete"}, Scopes: []string{"a2a.push_config.write"}},
}

// compatMethods maps the legacy dispatcher's methods (POST /a2a/v1/) to
// v1 methods; every one needs the a2a.invoke scope.
var compatMethods = map[string]string{
	"tasks.send": "SendMessage", "tasks.get": "GetTask", "tasks.list": "ListTasks", "tasks.cancel": "CancelTask",
}

var methodIndex = func() map[string]*Method {
	m := map[string]*Method{}
	for i := range Methods {
		m[Methods[i].Name] = &Methods[i]
		for _, a := range Methods[i].Aliases {
			m[a] = &Methods[i]
		}
	}
	return m
}()

// LookupMethod returns the method named name or one of its aliases.
func LookupMethod(name string) (*Method, bool) {
	m, ok := methodIndex[name]
	return m, ok
}

// RPCHandlerConfig configures an [RPCHandler].
type RPCHandlerConfig struct {
	// Kernel runs every call: one decision, rate limit, budget and one
	// audit event. Required.
	Kernel *talos.Kernel
	// Authorizer checks the second and later scopes of multi-scope
	// methods (SendStreamingMessage); it must be the Kernel's. Required.
	Authorizer capability.Authorizer
	// Tasks stores tasks. Required.
	Tasks TaskStore
	// Executor runs tasks. Required.
	Executor Executor
	// Push, if set, stores push configurations and delivers task updates.
	Push *PushNotifier
	// ExtendedCard, if set, is the v1 card GetExtendedAgentCard answers
	// to authorized callers ([AgentCard.V1]).
	ExtendedCard json.RawMessage
	// Stream bounds SSE streams.
	Stream StreamLimits
	// Budget, if set, returns the budget to reserve for a call.
	Budget func(r *http.Request, method string) *budget.ReserveRequest
	// Team, if set, returns the caller's team (for team budgets and the
	// audit event's principal).
	Team func(r *http.Request) string
	// Now returns the time. If nil, time.Now.
	Now func() time.Time
}

// RPCHandler serves the A2A v1 JSON-RPC surface (POST /rpc and
// /a2a/v1/rpc) and the legacy compat dispatcher (POST /a2a/v1/).
// It must be mounted behind a [talos.Attester] whose routes mark these
// paths AttestOnly (see [Routes]): requests without a verified principal
// are refused.
type RPCHandler struct {
	cfg    RPCHandlerConfig
	hub    *hub
	compat bool
}

// NewRPCHandler checks cfg and returns the handler.
func NewRPCHandler(cfg RPCHandlerConfig) (*RPCHandler, error) {
	if cfg.Kernel == nil || cfg.Authorizer == nil || cfg.Tasks == nil || cfg.Executor == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "a2a: RPCHandlerConfig.Kernel, Authorizer, Tasks and Executor are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Stream = cfg.Stream.withDefaults()
	return &RPCHandler{cfg: cfg, hub: newHub()}, nil
}

// Compat returns a handler for the legacy dispatcher (POST /a2a/v1/):
// tasks.send, tasks.get, tasks.list and tasks.cancel, each requiring the
// a2a.invoke scope, sharing h's tasks.
func (h *RPCHandler) Compat() http.Handler {
	c := *h
	c.compat = true
	return &c
}

// Routes returns the attested routes of the surface, for the server's
// talos.RouteTable: the handler authorizes per method on its own.
func Routes() []talos.Route {
	return []talos.Route{
		{Pattern: "POST /rpc", Opcode: "a2a.v1.rpc", AttestOnly: true},
		{Pattern: "POST /a2a/v1/rpc", Opcode: "a2a.v1.rpc", AttestOnly: true},
		{Pattern: "POST /a2a/v1/{$}", Opcode: "a2a.compat.rpc", AttestOnly: true},
	}
}

// MaxRequestBody bounds a JSON-RPC request body.
const MaxRequestBody = 1 << 20

// rpcRequest is the JSON-RPC envelope as parsed.
type rpcRequest struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

type rpcError struct {
	Code    int            `json:"code"`
	Message string         `json:"message"`
	Data    map[string]any `json:"data,omitempty"`
}

type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

func writeRPC(w http.ResponseWriter, resp rpcResponse) {
	if len(resp.ID) == 0 {
		resp.ID = json.RawMessage("null")
	}
	resp.JSONRPC = "2.0"
	b, err := json.Marshal(resp)
	if err != nil {
		b = []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(b, '\n'))
}

func protoErr(code int, msg string) *rpcError { return &rpcError{Code: code, Message: msg} }

// domainErr maps err to the -32000 error with talos_code; INTERNAL errors
// carry no message detail.
func domainErr(err error) *rpcError {
	var ce *contracts.Error
	if !errors.As(err, &ce) || ce.Code == contracts.CodeInternal || ce.Code == "" {
		return &rpcError{Code: RPCInternalError, Message: "Internal error"}
	}
	return &rpcError{Code: RPCDomainError, Message: ce.Message, Data: map[string]any{
		"talos_code": ce.Code, "http_status": contracts.HTTPStatus(ce.Code),
	}}
}

// parseEnvelope parses and checks a JSON-RPC request body.
func parseEnvelope(body []byte) (rpcRequest, *rpcError) {
	var req rpcRequest
	if err := contracts.CheckCaseFold(body); err != nil {
		return req, protoErr(RPCParseError, "Parse error")
	}
	if err := contracts.UnmarshalFields(body, &req); err != nil {
		return req, protoErr(RPCParseError, "Parse error")
	}
	if req.JSONRPC != "2.0" || req.Method == "" {
		return req, protoErr(RPCInvalidRequest, "Invalid Request")
	}
	if len(req.ID) == 0 || !validID(req.ID) {
		req.ID = nil
		return req, protoErr(RPCInvalidRequest, "Invalid Request")
	}
	if len(req.Params) == 0 {
		req.Params = json.RawMessage("{}")
	}
	if req.Params[0] != '{' {
		return req, protoErr(RPCInvalidParams, "Invalid params")
	}
	return req, nil
}

// validID accepts string and integer ids (the contract's).
func validID(id json.RawMessage) bool {
	if id[0] == '"' {
		var s string
		return json.Unmarshal(id, &s) == nil
	}
	_, err := strconv.ParseInt(string(id), 10, 64)
	return err == nil
}

// ServeHTTP implements http.Handler.
func (h *RPCHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	principal, ok := talos.PrincipalFrom(r.Context())
	if !ok {
		talos.WriteError(w, r, contracts.New(contracts.CodeAuthInvalid, "attestation required"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBody+1))
	if err != nil || len(body) > MaxRequestBody {
		h.protocolError(w, r, principal, nil, protoErr(RPCInvalidRequest, "Invalid Request"))
		return
	}
	req, perr := parseEnvelope(body)
	if perr != nil {
		h.protocolError(w, r, principal, req.ID, perr)
		return
	}
	var m *Method
	scopes := []string(nil)
	if h.compat {
		v1, ok := compatMethods[req.Method]
		if ok {
			m = methodIndex[v1]
			scopes = []string{"a2a.invoke"}
		}
	} else if mm, ok := methodIndex[req.Method]; ok {
		m, scopes = mm, mm.Scopes
	}
	if m == nil {
		h.protocolError(w, r, principal, req.ID, protoErr(RPCMethodNotFound, "Method not found"))
		return
	}
	capHeader := r.Header.Get(talos.HeaderCapability)
	sess := r.Header.Get(talos.HeaderSession)
	creq := func(action string) capability.Request {
		return capability.Request{Capability: capHeader, SessionID: sess, Principal: principal, Tool: Tool, Action: action}
	}
	// Extra scopes are checked first; a denial is the call's decision.
	var pre *capability.Decision
	for _, s := range scopes[1:] {
		d, err := h.cfg.Authorizer.Authorize(r.Context(), creq(s))
		if err != nil || !d.Allowed {
			if err != nil {
				d = capability.Decision{Principal: principal, Tool: Tool, Action: s, Reason: capability.ReasonStoreUnavailable}
			}
			pre = &d
			break
		}
	}
	call := talos.Call{
		Request:      creq(scopes[0]),
		HTTP:         r,
		SurfaceID:    "a2a.v1.rpc",
		TemplatePath: r.URL.Path,
		Decision:     pre,
		RateSurface:  "a2a.v1.rpc",
		Meta:         map[string]any{"method": m.Name},
	}
	if h.compat {
		call.SurfaceID, call.RateSurface = "a2a.compat.rpc", "a2a.compat.rpc"
	}
	if h.cfg.Budget != nil {
		call.Budget = h.cfg.Budget(r, m.Name)
	}
	if h.cfg.Team != nil {
		call.Team = h.cfg.Team(r)
	}
	cc := &callCtx{principal: principal.String(), rpcID: req.ID, params: req.Params, r: r, authz: h.cfg.Authorizer, reauth: creq(scopes[len(scopes)-1])}
	call.Meta["id"] = cc.requestID()
	started := false
	out, kerr := h.cfg.Kernel.Do(r.Context(), call, func(ctx context.Context, d capability.Decision) (int64, int, error) {
		started = true
		// Without a reported cost, a budgeted call is charged its
		// reservation; a call that fails releases it (the handler error
		// is the audited outcome).
		var cost int64
		if call.Budget != nil {
			cost = call.Budget.Amount
		}
		cc.listAll = h.allowed(ctx, creq("a2a.list"))
		if m.Stream {
			return cost, http.StatusOK, h.stream(ctx, w, m, cc)
		}
		var res any
		var err error
		if h.compat {
			res, err = h.dispatchCompat(ctx, req.Method, cc)
		} else {
			res, err = h.dispatch(ctx, m, cc)
		}
		if err != nil {
			if rp, ok := err.(*rpcErrorValue); ok {
				writeRPC(w, rpcResponse{ID: req.ID, Error: rp.e})
				return 0, http.StatusBadRequest, contracts.New(contracts.CodeSchemaValidationError, "a2a: "+rp.e.Message)
			}
			writeRPC(w, rpcResponse{ID: req.ID, Error: domainErr(err)})
			return 0, contracts.HTTPStatus(contracts.CodeOf(err)), err
		}
		writeRPC(w, rpcResponse{ID: req.ID, Result: res})
		return cost, http.StatusOK, nil
	})
	if !started {
		code := out.Code
		if code == "" {
			code = contracts.CodeOf(kerr)
		}
		writeRPC(w, rpcResponse{ID: req.ID, Error: domainErr(contracts.New(code, string("a2a: call denied: "+code)))})
	}
}

// protocolError answers an attested request that names no valid method:
// it is still rate-limited and audited once through the Kernel (decision
// talos.ReasonAttested, status 400), so every attested call leaves one
// event.
func (h *RPCHandler) protocolError(w http.ResponseWriter, r *http.Request, principal identity.DID, id json.RawMessage, e *rpcError) {
	surface := "a2a.v1.rpc"
	if h.compat {
		surface = "a2a.compat.rpc"
	}
	d := capability.Decision{Allowed: true, Reason: talos.ReasonAttested, Principal: principal}
	call := talos.Call{Request: capability.Request{Principal: principal}, HTTP: r, SurfaceID: surface, RateSurface: surface,
		TemplatePath: r.URL.Path, Decision: &d, Meta: map[string]any{"error": e.Message}}
	if h.cfg.Team != nil {
		call.Team = h.cfg.Team(r)
	}
	ran := false
	out, kerr := h.cfg.Kernel.Do(r.Context(), call, func(context.Context, capability.Decision) (int64, int, error) {
		ran = true
		writeRPC(w, rpcResponse{ID: id, Error: e})
		return 0, http.StatusBadRequest, nil
	})
	if !ran {
		code := out.Code
		if code == "" {
			code = contracts.CodeOf(kerr)
		}
		writeRPC(w, rpcResponse{ID: id, Error: domainErr(contracts.New(code, string("a2a: call denied: "+code)))})
	}
}

// allowed asks the Authorizer without recording a decision (used only to
// widen visibility to principals granted a2a.list).
func (h *RPCHandler) allowed(ctx context.Context, req capability.Request) bool {
	d, err := h.cfg.Authorizer.Authorize(ctx, req)
	return err == nil && d.Allowed
}

// rpcErrorValue is a protocol error returned by a method.
type rpcErrorValue struct{ e *rpcError }

func (e *rpcErrorValue) Error() string { return e.e.Message }

func invalidParams() error { return &rpcErrorValue{protoErr(RPCInvalidParams, "Invalid params")} }

// callCtx is what a method needs of its request.
type callCtx struct {
	principal string
	rpcID     json.RawMessage
	params    json.RawMessage
	r         *http.Request
	listAll   bool
	authz     capability.Authorizer
	reauth    capability.Request
}

func (c *callCtx) requestID() string {
	var s string
	if json.Unmarshal(c.rpcID, &s) == nil {
		return s
	}
	return string(c.rpcID)
}

// visible reports whether the caller may see t.
func (c *callCtx) visible(t *Task) bool { return t.Owner == c.principal || c.listAll }

func decodeParams(raw json.RawMessage, v any) error {
	if err := contracts.UnmarshalFields(raw, v); err != nil {
		return invalidParams()
	}
	return nil
}

func (h *RPCHandler) dispatch(ctx context.Context, m *Method, c *callCtx) (any, error) {
	switch m.Name {
	case "GetExtendedAgentCard":
		if h.cfg.ExtendedCard == nil {
			return nil, contracts.New(contracts.CodeNotFound, "no extended agent card")
		}
		return h.cfg.ExtendedCard, nil
	case "SendMessage":
		t, err := h.send(ctx, c, nil)
		if err != nil {
			return nil, err
		}
		res := map[string]any{"task": taskWire(t, -1, true)}
		if msg := lastAgentMessage(t); msg != nil {
			res["message"] = msg
		}
		return res, nil
	case "GetTask":
		var p struct {
			ID               string `json:"id"`
			HistoryLength    *int   `json:"historyLength"`
			IncludeArtifacts *bool  `json:"includeArtifacts"`
		}
		if err := decodeParams(c.params, &p); err != nil || p.ID == "" {
			return nil, invalidParams()
		}
		t, err := h.visibleTask(ctx, c, p.ID)
		if err != nil {
			return nil, err
		}
		hl := -1
		if p.HistoryLength != nil {
			hl = *p.HistoryLength
		}
		return taskWire(t, hl, p.IncludeArtifacts == nil || *p.IncludeArtifacts), nil
	case "CancelTask":
		var p struct {
			ID string `json:"id"`
		}
		if err := decodeParams(c.params, &p); err != nil || p.ID == "" {
			return nil, invalidParams()
		}
		if _, err := h.ownTask(ctx, c, p.ID); err != nil {
			return nil, err
		}
		t, err := h.transition(ctx, p.ID, TaskCanceled, "Task canceled", nil)
		if err != nil {
			return nil, err
		}
		h.cfg.Executor.Cancel(p.ID)
		return taskWire(t, -1, true), nil
	case "ListTasks":
		return h.list(ctx, c)
	default:
		return h.pushMethod(ctx, m.Name, c)
	}
}

// visibleTask loads a task the caller may see; others are NOT_FOUND, so
// task ids of other principals cannot be probed.
func (h *RPCHandler) visibleTask(ctx context.Context, c *callCtx, id string) (*Task, error) {
	t, err := h.cfg.Tasks.GetTask(ctx, id)
	if err != nil {
		return nil, err
	}
	if !c.visible(t) {
		return nil, ErrTaskNotFound
	}
	return t, nil
}

// ownTask loads a task the caller owns, for changes (cancel, push
// configuration): a2a.list widens reading, never writing.
func (h *RPCHandler) ownTask(ctx context.Context, c *callCtx, id string) (*Task, error) {
	t, err := h.cfg.Tasks.GetTask(ctx, id)
	if err != nil {
		return nil, err
	}
	if t.Owner != c.principal {
		return nil, ErrTaskNotFound
	}
	return t, nil
}

type pageToken struct {
	After string `json:"after"`
}

func (h *RPCHandler) list(ctx context.Context, c *callCtx) (any, error) {
	var p struct {
		ContextID string    `json:"contextId"`
		Status    TaskState `json:"status"`
		PageSize  *int      `json:"pageSize"`
		PageToken string    `json:"pageToken"`
	}
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	if p.Status != "" && !p.Status.Valid() {
		return nil, invalidParams()
	}
	size := 50
	if p.PageSize != nil {
		if *p.PageSize < 1 || *p.PageSize > 100 {
			return nil, invalidParams()
		}
		size = *p.PageSize
	}
	f := TaskFilter{ContextID: p.ContextID, State: p.Status, Limit: size}
	if !c.listAll {
		f.Owner = c.principal
	}
	if p.PageToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(p.PageToken)
		var tok pageToken
		if err != nil || contracts.UnmarshalFields(raw, &tok) != nil || tok.After == "" {
			return nil, invalidParams()
		}
		f.After = tok.After
	}
	tasks, total, err := h.cfg.Tasks.ListTasks(ctx, f)
	if err != nil {
		return nil, err
	}
	wire := make([]map[string]any, 0, len(tasks))
	for _, t := range tasks {
		wire = append(wire, taskWire(t, 0, false))
	}
	res := map[string]any{"tasks": wire, "pageSize": size, "totalSize": total}
	if len(tasks) == size {
		b, _ := json.Marshal(pageToken{After: tasks[len(tasks)-1].ID})
		res["nextPageToken"] = base64.RawURLEncoding.EncodeToString(b)
	} else {
		res["nextPageToken"] = ""
	}
	return res, nil
}

// taskWire is the contract form of t; historyLength < 0 keeps all history.
func taskWire(t *Task, historyLength int, artifacts bool) map[string]any {
	w := map[string]any{
		"id": t.ID, "contextId": t.ContextID, "version": "1.0", "status": t.Status,
		"metadata": map[string]any{
			"originSurface": "a2a_v1", "requestId": t.RequestID, "version": t.Version,
			"createdAt": t.Created.UTC().Format(time.RFC3339), "lastModified": t.Updated.UTC().Format(time.RFC3339),
		},
	}
	hist := t.History
	if historyLength >= 0 && len(hist) > historyLength {
		hist = hist[len(hist)-historyLength:]
	}
	if len(hist) > 0 {
		w["history"] = hist
	}
	if artifacts && len(t.Artifacts) > 0 {
		w["artifacts"] = t.Artifacts
	}
	return w
}

func lastAgentMessage(t *Task) *Message {
	if len(t.Artifacts) == 0 {
		return nil
	}
	a := t.Artifacts[len(t.Artifacts)-1]
	return &Message{MessageID: t.ID + ":message", Role: "agent", TaskID: t.ID, ContextID: t.ContextID, Parts: a.Parts}
}
