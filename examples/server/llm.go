package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// headerBudgetWarning is set on answers whose call exceeded a warn-mode
// budget (the call went through; hard budgets refuse instead).
const headerBudgetWarning = "X-Talos-Budget-Warning"

const (
	opLLM = "llm.chat.completions"
	// maxLLMBody bounds a chat completion request body.
	maxLLMBody = 1 << 20
	// maxLLMResponse bounds the upstream's answer.
	maxLLMResponse = 4 << 20
	// defaultMaxTokens is reserved when a request gives no max_tokens.
	defaultMaxTokens = 1024
	// maxMaxTokens caps max_tokens.
	maxMaxTokens = 128_000
)

// llmProxy forwards OpenAI-compatible chat completions to one upstream.
// Each call is authorized with capability tool "llm" and action = the model
// (so grants are model allowlists), reserves budget for the worst case
// (prompt estimate + max_tokens) and settles with the usage the upstream
// reports.
type llmProxy struct {
	core     *core
	upstream string // base URL, e.g. http://127.0.0.1:9000/v1
	apiKey   string // sent as Bearer to the upstream; never logged
	client   *http.Client
	// pricePer1K is the price of 1000 tokens in micro-USD.
	pricePer1K int64
	// timeout bounds one upstream call.
	timeout time.Duration
}

// cost is the price of tokens in micro-USD, rounded up.
func (l *llmProxy) cost(tokens int64) int64 {
	return (tokens*l.pricePer1K + 999) / 1000
}

// chatRequest holds the fields the proxy decides on. They are decoded with
// contracts.UnmarshalFields (field names case-sensitive, bodies with two keys
// equal under case folding refused at any depth), so they are exactly what a
// case-sensitive upstream reads in the forwarded bytes.
type chatRequest struct {
	Model     string `json:"model"`
	MaxTokens *int64 `json:"max_tokens"`
	Stream    bool   `json:"stream"`
	// N is the number of choices: each may generate max_tokens.
	N *int64 `json:"n"`
	// MaxCompletionTokens is OpenAI's newer spelling of the completion
	// bound; refused, so that one field bounds what is budgeted.
	MaxCompletionTokens json.RawMessage `json:"max_completion_tokens"`
}

// maxChoices bounds n.
const maxChoices = 16

type chatUsage struct {
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
		TotalTokens      int64 `json:"total_tokens"`
	} `json:"usage"`
}

func (c *core) mountLLM(mux *http.ServeMux, p *llmProxy) {
	mux.Handle("POST /v1/chat/completions", c.attester.Wrap(c.registered(p.handle)))
}

func (l *llmProxy) handle(w http.ResponseWriter, r *http.Request, p *principal) {
	extendWriteDeadline(w, l.timeout+l.core.writeTimeout)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLLMBody))
	if err != nil {
		talos.WriteError(w, r, contracts.Errorf(contracts.CodeInvalidInput, "request body too large or unreadable"))
		return
	}
	req, maxTokens, choices, err := parseChatRequest(body)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	// Worst case, conservatively: every byte of the request is a prompt
	// token (tokenizers emit at least one byte per token; len/4 let a dense
	// prompt overspend a hard cap), plus max_tokens per choice.
	worstCase := int64(len(body)) + choices*maxTokens
	estimate := l.cost(worstCase)
	did, _ := identity.ParseDID(p.DID)
	budgetReq := l.core.budgets.request(p, estimate, "llm")
	var status int
	var respBody []byte
	out, err := l.core.kernel.Do(r.Context(), talos.Call{
		Request: capability.Request{
			Capability: r.Header.Get(talos.HeaderCapability), Principal: did, Tool: "llm", Action: req.Model,
		},
		HTTP: r, SurfaceID: opLLM, TemplatePath: "/v1/chat/completions", Team: p.TeamID,
		RateSurface: rateLLM,
		Budget:      budgetReq,
	}, func(ctx context.Context, d capability.Decision) (int64, int, error) {
		if req.MaxTokens == nil && hardBudget(budgetReq) {
			// The upstream would not be bound by the default reserved.
			return 0, 0, contracts.Errorf(contracts.CodeInvalidInput, "max_tokens is required under a hard budget")
		}
		st, rb, tokens, err := l.forward(ctx, body, worstCase)
		status, respBody = st, rb
		if err != nil {
			return 0, 0, err
		}
		if tokens > worstCase && hardBudget(budgetReq) {
			// Under a hard budget the settle is bounded by the
			// reservation: an upstream reporting more than the request
			// could generate is not allowed to push the spend past it.
			tokens = worstCase
		}
		return l.cost(tokens), st, nil
	})
	if err != nil || !out.Allowed {
		code := out.Code
		if code == "" {
			code = contracts.CodeOf(err)
		}
		e := contracts.Errorf(code, "request refused")
		switch code {
		case contracts.CodeRateLimited, contracts.CodeBudgetExceeded, contracts.CodeUpstream5xx, contracts.CodeUpstreamTimeout:
			e = e.WithRetryable(true)
		}
		talos.WriteError(w, r, e)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if out.Reservation.Warned {
		w.Header().Set(headerBudgetWarning, "exceeded")
	}
	w.WriteHeader(status)
	w.Write(respBody)
}

// parseChatRequest decodes the fields the proxy decides on and checks them:
// the model, the completion bound per choice (max_tokens, or the default)
// and the number of choices. Errors are *contracts.Error.
func parseChatRequest(body []byte) (req chatRequest, maxTokens, choices int64, err error) {
	// OpenAI requests carry floats (temperature), so the strict rules for
	// signed objects do not apply; duplicate keys, keys equal under case
	// folding, mis-cased field names and bad UTF-8 are refused: the bytes
	// forwarded are the document authorized, budgeted and audited.
	if err := contracts.UnmarshalFields(body, &req); err != nil {
		return req, 0, 0, err
	}
	if req.Model == "" || len(req.Model) > 128 {
		return req, 0, 0, contracts.Errorf(contracts.CodeInvalidInput, "model is required")
	}
	if req.Stream {
		return req, 0, 0, contracts.Errorf(contracts.CodeStreamingNotSupported, "streaming is not supported")
	}
	if req.MaxCompletionTokens != nil {
		return req, 0, 0, contracts.Errorf(contracts.CodeInvalidInput, "max_completion_tokens is not supported: bound the completion with max_tokens")
	}
	maxTokens = int64(defaultMaxTokens)
	if req.MaxTokens != nil {
		if *req.MaxTokens < 1 || *req.MaxTokens > maxMaxTokens {
			return req, 0, 0, contracts.Errorf(contracts.CodeInvalidInput, "max_tokens out of range")
		}
		maxTokens = *req.MaxTokens
	}
	choices = 1
	if req.N != nil {
		if *req.N < 1 || *req.N > maxChoices {
			return req, 0, 0, contracts.Errorf(contracts.CodeInvalidInput, "n out of range")
		}
		choices = *req.N
	}
	return req, maxTokens, choices, nil
}

// hardBudget reports whether some scope of req is enforced in hard mode.
func hardBudget(req *budget.ReserveRequest) bool {
	if req == nil {
		return false
	}
	for _, sc := range req.Scopes {
		if sc.Mode == budget.ModeHard {
			return true
		}
	}
	return false
}

// forward sends body upstream and returns the status, the response and the
// total tokens to charge: those the upstream reports, worstCase when a
// success reports none, and none for a refusal.
func (l *llmProxy) forward(ctx context.Context, body []byte, worstCase int64) (int, []byte, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(l.upstream, "/")+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return 0, nil, 0, contracts.Wrap(contracts.CodeInternal, "bad upstream URL", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if l.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+l.apiKey)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0, nil, 0, contracts.Errorf(contracts.CodeUpstreamTimeout, "upstream timed out")
		}
		return 0, nil, 0, contracts.Errorf(contracts.CodeUpstream5xx, "upstream unreachable")
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, maxLLMResponse+1))
	if err != nil || len(rb) > maxLLMResponse {
		return 0, nil, 0, contracts.Errorf(contracts.CodeUpstream5xx, "upstream response unreadable or too large")
	}
	if resp.StatusCode >= 500 {
		return 0, nil, 0, contracts.Errorf(contracts.CodeUpstream5xx, "upstream failed")
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, rb, 0, nil // refused upstream: nothing generated, nothing charged
	}
	var u chatUsage
	if json.Unmarshal(rb, &u) == nil && u.Usage != nil && u.Usage.TotalTokens >= 0 && u.Usage.TotalTokens <= maxMaxTokens*4 {
		return resp.StatusCode, rb, u.Usage.TotalTokens, nil
	}
	return resp.StatusCode, rb, worstCase, nil
}
