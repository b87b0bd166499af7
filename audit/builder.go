package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/talosgo/talos/contracts"
)

// Meta redaction markers of the contract's normative vector
// (audit_event_vectors.json "meta_filtering_normative").
const (
	MetaRedactionApplied = "meta_redaction_applied"
	MetaRedactedKeys     = "meta_redacted_keys"
)

// A Decision is what the caller knows about one handled request: who asked,
// which surface answered, and how it ended. talos.Kernel maps its
// authorization decision into it.
type Decision struct {
	// RequestID identifies the request (1–128 characters). Required.
	RequestID string
	// SurfaceID is the opcode of the surface inventory. Required.
	SurfaceID string
	// TemplatePath is the surface's template path ("/v1/items/{id}"), never
	// the raw path. If empty, the request's URL path is used only when the
	// builder's Config.RawPathUnsafe is set; otherwise Build fails.
	TemplatePath string
	// Status is the HTTP status returned.
	Status int
	// Outcome is success, failure or denied. If empty it is derived from
	// Status: 401 and 403 are denied, ≥ 400 failure, otherwise success.
	Outcome string
	// Principal is one of the three contract shapes.
	Principal Principal
	// Resource is optional.
	Resource *Resource
	// Meta is the unfiltered metadata; the surface allowlist filters it.
	Meta map[string]any
	// Time is when the request was handled. If zero, the builder's clock.
	Time time.Time
}

// MarkerPolicy says how filtered meta keys are recorded.
type MarkerPolicy int

const (
	// MarkersNormative adds meta_redaction_applied: true and
	// meta_redacted_keys: "<sorted removed keys joined by ", ">" when the
	// allowlist removed keys (the normative contract vector). Default.
	MarkersNormative MarkerPolicy = iota
	// MarkersNone removes keys silently (the contract's
	// failure_meta_filtered vector, which contradicts the normative one).
	MarkersNone
)

// BuilderConfig configures an [EventBuilder]. The zero value records no
// client IP and no meta.
type BuilderConfig struct {
	// IPHashKey is the HMAC-SHA256 key for client_ip_hash (the contract uses
	// the UTF-8 bytes of a configured secret). If nil, no IP is recorded.
	IPHashKey []byte
	// IPHashKeyID names IPHashKey in events. Required with IPHashKey.
	IPHashKeyID string
	// ClientIP extracts the client address. If nil, the host of
	// r.RemoteAddr is used (proxy headers are not trusted by default).
	ClientIP func(r *http.Request) (netip.Addr, bool)
	// MetaAllowlist maps a surface id to the meta keys it may record.
	// A surface absent from the map records no meta (fail closed).
	MetaAllowlist map[string][]string
	// Markers selects the redaction marker policy; zero is MarkersNormative.
	Markers MarkerPolicy
	// Now is the clock. If nil, time.Now.
	Now func() time.Time
	// NewID returns event ids (lowercase UUIDv7). If nil, contracts.NewUUIDv7.
	NewID func() string
	// RawPathUnsafe lets Build fall back to the raw request path when a
	// Decision has no TemplatePath. Raw paths may carry identifiers and
	// secrets; the contract requires the template path.
	RawPathUnsafe bool
}

// An EventBuilder turns handled requests into sealed contract events. It is
// safe for concurrent use. It never logs or returns the IP hash key.
type EventBuilder struct {
	cfg   BuilderConfig
	key   []byte
	allow map[string]map[string]bool
}

// NewEventBuilder validates cfg and returns a builder. It copies the key and
// the allowlist.
func NewEventBuilder(cfg BuilderConfig) (*EventBuilder, error) {
	if cfg.IPHashKey != nil && cfg.IPHashKeyID == "" {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit: BuilderConfig.IPHashKeyID is required with IPHashKey")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = contracts.NewUUIDv7
	}
	if cfg.ClientIP == nil {
		cfg.ClientIP = remoteAddr
	}
	b := &EventBuilder{cfg: cfg, allow: make(map[string]map[string]bool, len(cfg.MetaAllowlist))}
	if cfg.IPHashKey != nil {
		b.key = append([]byte(nil), cfg.IPHashKey...)
	}
	b.cfg.IPHashKey = nil
	for surface, keys := range cfg.MetaAllowlist {
		set := make(map[string]bool, len(keys))
		for _, k := range keys {
			set[k] = true
		}
		b.allow[surface] = set
	}
	b.cfg.MetaAllowlist = nil
	return b, nil
}

func remoteAddr(r *http.Request) (netip.Addr, bool) {
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	return a, err == nil
}

// CanonicalIP returns the canonical text the contract hashes: dotted IPv4,
// compressed lowercase IPv6. IPv4-mapped IPv6 addresses hash as IPv4 and
// zones are dropped (the contract leaves both unspecified).
func CanonicalIP(a netip.Addr) string {
	return a.Unmap().WithZone("").String()
}

// HashIP returns hex(HMAC-SHA256(key, canonical ip text)).
func HashIP(key []byte, ip string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ip))
	return hex.EncodeToString(m.Sum(nil))
}

// Build returns the sealed event for the handled request r, whose method
// and client address it reads. It fails with TALOS_INVALID_INPUT when r is
// nil or the result would break the contract schema (for example a missing
// template path).
func (b *EventBuilder) Build(r *http.Request, d Decision) (Event, error) {
	e, err := b.Draft(r, d)
	if err != nil {
		return Event{}, err
	}
	if _, err := e.Seal(); err != nil {
		return Event{}, err
	}
	return e, nil
}

// Draft is Build without the seal: the event is not yet validated and its
// EventHash is empty. [Log.Append] (every [AuditLog]) validates and seals
// what it appends, so an event that goes straight to a log is best
// drafted: it is then encoded and hashed once instead of twice. Draft
// fails only when r is nil.
func (b *EventBuilder) Draft(r *http.Request, d Decision) (Event, error) {
	if r == nil {
		return Event{}, eventError("Build needs the request")
	}
	var client netip.Addr
	if b.key != nil {
		if a, ok := b.cfg.ClientIP(r); ok {
			client = a
		}
	}
	if d.TemplatePath == "" && b.cfg.RawPathUnsafe && r.URL != nil {
		d.TemplatePath = r.URL.Path
	}
	return b.DraftEvent(r.Method, client, d), nil
}

// BuildEvent returns the sealed event of an action that did not come in as
// an HTTP request (a queue message, a scheduled job, a call through
// Kernel.Do without one): method is the event's http.method (GET when
// empty), client the caller's address, hashed when the builder has an IP
// hash key (the zero Addr records none). d.TemplatePath is required. It
// fails with TALOS_INVALID_INPUT when the result would break the contract
// schema.
func (b *EventBuilder) BuildEvent(method string, client netip.Addr, d Decision) (Event, error) {
	e := b.DraftEvent(method, client, d)
	if _, err := e.Seal(); err != nil {
		return Event{}, err
	}
	return e, nil
}

// DraftEvent is BuildEvent without the seal (see [EventBuilder.Draft]):
// the event is not yet validated and its EventHash is empty.
func (b *EventBuilder) DraftEvent(method string, client netip.Addr, d Decision) Event {
	t := d.Time
	if t.IsZero() {
		t = b.cfg.Now()
	}
	e := Event{
		SchemaID:      EventSchemaID,
		SchemaVersion: EventSchemaVersion,
		EventID:       b.cfg.NewID(),
		TS:            t.UTC().Format(TimeFormat),
		RequestID:     d.RequestID,
		SurfaceID:     d.SurfaceID,
		Outcome:       d.Outcome,
		Principal:     d.Principal,
		Resource:      d.Resource,
		HTTP:          HTTPInfo{Method: method, Path: d.TemplatePath, StatusCode: d.Status},
	}
	if e.HTTP.Method == "" {
		e.HTTP.Method = http.MethodGet
	}
	if e.Outcome == "" {
		e.Outcome = OutcomeFor(d.Status)
	}
	if b.key != nil && client.IsValid() {
		b.setIP(&e, CanonicalIP(client))
	}
	e.Meta = b.FilterMeta(d.SurfaceID, d.Meta)
	return e
}

func (b *EventBuilder) setIP(e *Event, ip string) {
	e.HTTP.ClientIPHash = HashIP(b.key, ip)
	e.HTTP.ClientIPHashAlg = IPHashAlg
	e.HTTP.ClientIPHashKeyID = b.cfg.IPHashKeyID
}

// OutcomeFor derives an outcome from an HTTP status: 401 and 403 are
// denied, other statuses ≥ 400 failure, the rest success.
func OutcomeFor(status int) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return OutcomeDenied
	case status >= 400:
		return OutcomeFailure
	}
	return OutcomeSuccess
}

// FilterMeta returns the members of meta the surface's allowlist admits and
// that are contract scalars (strings are cut to 1024 characters). Removed
// keys are recorded per the builder's MarkerPolicy. The result has at most
// [MaxMetaKeys] members; keys beyond that, in sorted order, are removed too.
// It never returns nil.
func (b *EventBuilder) FilterMeta(surface string, meta map[string]any) map[string]any {
	allow := b.allow[surface]
	out := make(map[string]any, len(meta))
	var removed []string
	for k, v := range meta {
		if !allow[k] || k == MetaRedactionApplied || k == MetaRedactedKeys {
			removed = append(removed, k)
			continue
		}
		sv, ok := scalar(v)
		if !ok {
			removed = append(removed, k)
			continue
		}
		out[k] = sv
	}
	limit := MaxMetaKeys
	if len(removed) > 0 && b.cfg.Markers == MarkersNormative {
		limit -= 2
	}
	if len(out) > limit {
		keys := make([]string, 0, len(out))
		for k := range out {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys[limit:] {
			delete(out, k)
			removed = append(removed, k)
		}
	}
	if len(removed) > 0 && b.cfg.Markers == MarkersNormative {
		sort.Strings(removed)
		out[MetaRedactionApplied] = true
		out[MetaRedactedKeys] = truncateRunes(strings.Join(removed, ", "), MaxMetaString)
	}
	return out
}

func scalar(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		return truncateRunes(x, MaxMetaString), utf8.ValidString(x)
	case nil, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64, json.Number:
		if _, err := appendScalar(nil, x, nil); err != nil {
			return nil, false
		}
		return x, true
	}
	return nil, false
}

func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := 0
	for count := 0; i < len(s) && count < n; count++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i]
}
