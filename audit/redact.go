package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
	"strings"

	"github.com/talosgo/talos/contracts"
)

// A RedactAction says what a rule does to a field.
type RedactAction int

const (
	// Drop removes the field. Only meta keys and resource fields can be
	// dropped; the contract requires the others.
	Drop RedactAction = iota + 1
	// HMAC replaces the value by "hmac:<key id>:<hex HMAC-SHA256>" of its
	// text, so equal values stay linkable without being readable.
	HMAC
	// Truncate keeps the first Keep characters.
	Truncate
)

// A RedactionRule applies one action to one field. Field is "meta.<key>",
// "meta.*" (every meta key), "request_id", "principal.principal_id",
// "principal.team_id", "principal.signer_key_id", "resource.resource_id" or
// "resource.resource_type".
type RedactionRule struct {
	Field  string
	Action RedactAction
	Keep   int // characters kept by Truncate
}

// RedactionConfig configures a [Redactor].
type RedactionConfig struct {
	Rules []RedactionRule
	// HMACKey keys HMAC rules. Required if any rule is HMAC.
	HMACKey []byte
	// HMACKeyID names HMACKey inside redacted values. Required with HMACKey.
	HMACKeyID string
	// Markers: with MarkersNormative (zero), dropped meta keys are recorded
	// in meta_redaction_applied / meta_redacted_keys like filtered ones.
	Markers MarkerPolicy
}

// A Redactor rewrites events before they are hashed and stored, so a log
// can be shared without the secrets its events would otherwise carry. The
// event_hash is computed after redaction: redacted values never reach the
// stored bytes. A Redactor is safe for concurrent use.
type Redactor struct {
	rules   map[string]RedactionRule
	allMeta *RedactionRule
	key     []byte
	keyID   string
	markers MarkerPolicy
}

var redactableFields = map[string]bool{
	"request_id": true, "principal.principal_id": true, "principal.team_id": true,
	"principal.signer_key_id": true, "resource.resource_id": true, "resource.resource_type": true,
}

// NewRedactor validates cfg. It fails with TALOS_INVALID_INPUT on an unknown
// field, a Drop of a required field, a Truncate with Keep < 1, or an HMAC
// rule without a key.
func NewRedactor(cfg RedactionConfig) (*Redactor, error) {
	r := &Redactor{rules: map[string]RedactionRule{}, keyID: cfg.HMACKeyID, markers: cfg.Markers}
	for _, rule := range cfg.Rules {
		isMeta := strings.HasPrefix(rule.Field, "meta.") && len(rule.Field) > len("meta.")
		if !isMeta && !redactableFields[rule.Field] {
			return nil, contracts.New(contracts.CodeInvalidInput, "audit: cannot redact field "+strconv.Quote(rule.Field))
		}
		switch rule.Action {
		case Drop:
			if !isMeta && !strings.HasPrefix(rule.Field, "resource.") {
				return nil, contracts.New(contracts.CodeInvalidInput, "audit: cannot drop required field "+rule.Field)
			}
		case HMAC:
			if len(cfg.HMACKey) == 0 || cfg.HMACKeyID == "" {
				return nil, contracts.New(contracts.CodeInvalidInput, "audit: HMAC rules need HMACKey and HMACKeyID")
			}
		case Truncate:
			if rule.Keep < 1 {
				return nil, contracts.New(contracts.CodeInvalidInput, "audit: Truncate needs Keep ≥ 1")
			}
		default:
			return nil, contracts.New(contracts.CodeInvalidInput, "audit: unknown redaction action")
		}
		if rule.Field == "meta.*" {
			rr := rule
			r.allMeta = &rr
			continue
		}
		r.rules[rule.Field] = rule
	}
	r.key = append([]byte(nil), cfg.HMACKey...)
	return r, nil
}

// Apply returns a redacted copy of e (e itself is not modified). Its
// event_hash is cleared; the log seals the copy.
func (r *Redactor) Apply(e Event) Event {
	e.EventHash = ""
	e.RequestID = r.str("request_id", e.RequestID)
	e.Principal.PrincipalID = r.str("principal.principal_id", e.Principal.PrincipalID)
	if e.Principal.TeamID != "" {
		e.Principal.TeamID = r.str("principal.team_id", e.Principal.TeamID)
	}
	if e.Principal.SignerKeyID != "" {
		e.Principal.SignerKeyID = r.str("principal.signer_key_id", e.Principal.SignerKeyID)
	}
	if e.Resource != nil {
		res := *e.Resource
		res.ResourceID = r.optional("resource.resource_id", res.ResourceID)
		res.ResourceType = r.optional("resource.resource_type", res.ResourceType)
		e.Resource = &res
	}
	if len(e.Meta) > 0 {
		e.Meta = r.meta(e.Meta)
	}
	return e
}

func (r *Redactor) str(field, v string) string {
	rule, ok := r.rules[field]
	if !ok {
		return v
	}
	return r.apply(rule, v)
}

func (r *Redactor) optional(field, v string) string {
	rule, ok := r.rules[field]
	if !ok || v == "" {
		return v
	}
	if rule.Action == Drop {
		return ""
	}
	return r.apply(rule, v)
}

func (r *Redactor) apply(rule RedactionRule, v string) string {
	switch rule.Action {
	case HMAC:
		m := hmac.New(sha256.New, r.key)
		m.Write([]byte(v))
		return "hmac:" + r.keyID + ":" + hex.EncodeToString(m.Sum(nil))
	case Truncate:
		return truncateRunes(v, rule.Keep)
	}
	return v
}

func (r *Redactor) meta(in map[string]any) map[string]any {
	out := make(map[string]any, len(in))
	var dropped []string
	for k, v := range in {
		rule, ok := r.rules["meta."+k]
		if !ok && r.allMeta != nil && k != MetaRedactionApplied && k != MetaRedactedKeys {
			rule, ok = *r.allMeta, true
		}
		if !ok {
			out[k] = v
			continue
		}
		switch rule.Action {
		case Drop:
			dropped = append(dropped, k)
		default:
			text, isString := v.(string)
			if !isString {
				b, err := appendScalar(nil, v, nil)
				if err != nil {
					dropped = append(dropped, k)
					continue
				}
				text = string(b)
			}
			out[k] = r.apply(rule, text)
		}
	}
	if len(dropped) > 0 && r.markers == MarkersNormative {
		if prev, ok := out[MetaRedactedKeys].(string); ok && prev != "" {
			dropped = append(dropped, strings.Split(prev, ", ")...)
		}
		sort.Strings(dropped)
		out[MetaRedactionApplied] = true
		out[MetaRedactedKeys] = truncateRunes(strings.Join(dropped, ", "), MaxMetaString)
	}
	return out
}
