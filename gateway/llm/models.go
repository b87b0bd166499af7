package llm

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/internal/httpx"
)

// The model listing: [Proxy.ModelsHandler] at ModelsPattern, audited as
// ModelsSurfaceID (the inventory's llm.models.list).
const (
	ModelsPattern      = "GET /v1/models"
	ModelsTemplatePath = "/v1/models"
	ModelsSurfaceID    = "llm.models.list"
)

// Limits of the model listing.
const (
	// MaxModels bounds the models listed (configured or the upstream's).
	MaxModels = 1024
	// MaxModelsResponse bounds the upstream's GET /models answer.
	MaxModelsResponse = 1 << 20
	// MaxModelName bounds a model name.
	MaxModelName = 128
)

// ModelsRoute is the attested route of the model listing, for the
// [talos.RouteTable] of the [talos.Attester] it is mounted behind.
func ModelsRoute() talos.Route {
	return talos.Route{Pattern: ModelsPattern, Opcode: ModelsSurfaceID, AttestOnly: true}
}

// ModelList is the answer of GET /v1/models (OpenAI's list object).
type ModelList struct {
	Object string  `json:"object"` // "list"
	Data   []Model `json:"data"`
}

// Model is one entry of a [ModelList].
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"` // "model"
	OwnedBy string `json:"owned_by"`
}

// ModelsHandler returns the handler of GET /v1/models, to be served at
// [ModelsPattern] behind a [talos.Attester] whose route table has
// [ModelsRoute]. It lists the models ([Config.Models], or the upstream's
// GET /models when none are configured) that the caller's capability
// token grants (tool "llm", action = the model), asking
// [Config.Authorizer] once per model; it is rate-limited (RateSurface) and
// audited once per request by the Kernel. A token that is not valid at
// all (expired, revoked, badly signed) is refused with its code; a valid
// one granting no model gets an empty list. Without Config.Authorizer
// every listing is refused (INTERNAL): the proxy cannot tell grants apart.
func (l *Proxy) ModelsHandler() http.Handler { return http.HandlerFunc(l.serveModels) }

func (l *Proxy) serveModels(w http.ResponseWriter, r *http.Request) {
	did, ok := talos.PrincipalFrom(r.Context())
	if !ok {
		talos.WriteError(w, r, contracts.New(contracts.CodeAuthInvalid, "request is not attested"))
		return
	}
	var team string
	if l.cfg.Team != nil {
		if team, ok = l.cfg.Team(r.Context(), did); !ok {
			talos.WriteError(w, r, contracts.New(contracts.CodeAuthInvalid, "unknown principal"))
			return
		}
	}
	if l.cfg.Authorizer == nil {
		talos.WriteError(w, r, contracts.New(contracts.CodeInternal, "model listing needs Config.Authorizer"))
		return
	}
	token := r.Header.Get(talos.HeaderCapability)
	// The caller's standing: granted models, or the denial of a token
	// that is not valid for any model. Any back-end failure denies.
	decision := &capability.Decision{Allowed: true, Reason: talos.ReasonAttested, Principal: did, Tool: Tool, Action: "models.list"}
	var granted []string
	models, listErr := l.models(r.Context())
	if listErr == nil {
		for _, m := range models {
			d, err := l.cfg.Authorizer.Authorize(r.Context(), capability.Request{Capability: token, Principal: did, Tool: Tool, Action: m})
			if err != nil {
				listErr = contracts.New(contracts.CodeInternal, "authorization failed")
				break
			}
			if d.Allowed {
				granted = append(granted, m)
				decision.CapabilityHash = d.CapabilityHash
				continue
			}
			switch d.Reason {
			case capability.ReasonScopeMismatch, capability.ReasonRBACDenied, capability.ReasonUnknownTool:
				continue // this model is not granted
			}
			denial := d
			decision = &denial
			break
		}
	}
	out, err := l.cfg.Kernel.Do(r.Context(), talos.Call{
		Request:  capability.Request{Capability: token, Principal: did, Tool: Tool, Action: decision.Action},
		Decision: decision,
		HTTP:     r, SurfaceID: ModelsSurfaceID, TemplatePath: ModelsTemplatePath, Team: team,
		RateSurface: RateSurface,
	}, func(context.Context, capability.Decision) (int64, int, error) {
		if listErr != nil {
			return 0, 0, listErr
		}
		return 0, http.StatusOK, nil
	})
	if err != nil || !out.Allowed {
		code := out.Code
		if code == "" {
			code = contracts.CodeOf(err)
		}
		e := contracts.New(code, "request refused")
		var ce *contracts.Error
		if errors.As(err, &ce) && ce.Code == code && handlerCode(string(code)) {
			e = contracts.New(code, ce.Message)
		}
		switch code {
		case contracts.CodeRateLimited, contracts.CodeUpstream5xx, contracts.CodeUpstreamTimeout:
			e = e.WithRetryable(true)
		}
		talos.WriteError(w, r, e)
		return
	}
	list := ModelList{Object: "list", Data: make([]Model, 0, len(granted))}
	for _, m := range granted {
		list.Data = append(list.Data, Model{ID: m, Object: "model", OwnedBy: "talos"})
	}
	httpx.WriteJSON(w, http.StatusOK, list)
}

// models returns the models served, sorted and without duplicates: the
// configured or routed ones, or the default upstream's.
func (l *Proxy) models(ctx context.Context) ([]string, error) {
	r := l.rt.Load()
	if len(r.models0) > 0 {
		return r.models0, nil
	}
	if r.def == nil {
		return nil, nil
	}
	u := r.def.ups[0]
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.base+"/models", nil)
	if err != nil {
		return nil, contracts.New(contracts.CodeInternal, "bad upstream URL")
	}
	if u.key != "" {
		req.Header.Set("Authorization", "Bearer "+u.key)
	}
	resp, err := l.cfg.Client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, contracts.New(contracts.CodeUpstreamTimeout, "upstream timed out")
		}
		return nil, contracts.New(contracts.CodeUpstream5xx, "upstream unreachable")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, upstreamStatus(resp.StatusCode)
	}
	rb, err := io.ReadAll(io.LimitReader(resp.Body, MaxModelsResponse+1))
	if err != nil || len(rb) > MaxModelsResponse {
		return nil, contracts.New(contracts.CodeUpstream5xx, "upstream model list unreadable or too large")
	}
	return ParseModelList(rb)
}

// ParseModelList decodes an upstream's model list (OpenAI's
// {"object":"list","data":[{"id":...},...]}) with the rules of
// [ParseChatRequest] and returns the model ids, sorted and without
// duplicates. A list without data, with more than MaxModels entries, or
// with an id that is empty, longer than MaxModelName or holding control
// characters is refused. Errors are *contracts.Error with code
// UPSTREAM_5XX.
func ParseModelList(raw []byte) ([]string, error) {
	var doc struct {
		Data *[]struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if len(raw) == 0 || raw[0] != '{' || contracts.UnmarshalFields(raw, &doc) != nil || doc.Data == nil {
		return nil, contracts.New(contracts.CodeUpstream5xx, "upstream model list is malformed")
	}
	if len(*doc.Data) > MaxModels {
		return nil, contracts.New(contracts.CodeUpstream5xx, "upstream model list is too long")
	}
	ids := make([]string, 0, len(*doc.Data))
	for _, m := range *doc.Data {
		if err := checkModelName(m.ID); err != nil {
			return nil, contracts.New(contracts.CodeUpstream5xx, "upstream model list has a bad id")
		}
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// checkModelName refuses an empty or over-long model name, or one holding
// control characters or spaces.
func checkModelName(m string) error {
	if m == "" || len(m) > MaxModelName || strings.ContainsFunc(m, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return contracts.New(contracts.CodeInvalidInput, "bad model name")
	}
	return nil
}
