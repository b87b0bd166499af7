package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/talosgo/talos/contracts"
)

// Contract constants of talos.audit_event v1.
const (
	EventSchemaID      = "talos.audit_event"
	EventSchemaVersion = "v1"
	IPHashAlg          = "HMAC-SHA256"
)

// Outcomes of an audited request.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// Authentication modes of a principal.
const (
	AuthSigned    = "signed"
	AuthBearer    = "bearer"
	AuthAnonymous = "anonymous"
)

// An Event is the contract audit event (schemas/audit/audit_event.schema.json).
// Its JSON form is exactly the contract's; the Merkle log, checkpoints and
// proofs live beside it, never inside the hashed object.
//
// Meta values are scalars: string, bool, nil, Go integers, integral float64
// or json.Number. [ParseEvent] yields json.Number for numbers.
type Event struct {
	SchemaID      string         `json:"schema_id"`
	SchemaVersion string         `json:"schema_version"`
	EventID       string         `json:"event_id"`
	TS            string         `json:"ts"`
	RequestID     string         `json:"request_id"`
	SurfaceID     string         `json:"surface_id"`
	Outcome       string         `json:"outcome"`
	Principal     Principal      `json:"principal"`
	HTTP          HTTPInfo       `json:"http"`
	Resource      *Resource      `json:"resource,omitempty"`
	Meta          map[string]any `json:"meta"`
	EventHash     string         `json:"event_hash"`
}

// A Principal is one of the three contract shapes; build it with
// [SignedPrincipal], [BearerPrincipal] or [AnonymousPrincipal].
type Principal struct {
	AuthMode    string `json:"auth_mode"`
	PrincipalID string `json:"principal_id"`
	TeamID      string `json:"team_id,omitempty"`
	SignerKeyID string `json:"signer_key_id,omitempty"`
}

// SignedPrincipal is a principal authenticated by a request signature.
func SignedPrincipal(id, team, signerKeyID string) Principal {
	return Principal{AuthMode: AuthSigned, PrincipalID: id, TeamID: team, SignerKeyID: signerKeyID}
}

// BearerPrincipal is a principal authenticated by a bearer credential.
func BearerPrincipal(id, team string) Principal {
	return Principal{AuthMode: AuthBearer, PrincipalID: id, TeamID: team}
}

// AnonymousPrincipal is the unauthenticated principal.
func AnonymousPrincipal() Principal {
	return Principal{AuthMode: AuthAnonymous, PrincipalID: "anonymous"}
}

// HTTPInfo is the event's http member. Path is the surface template path,
// never the raw request path. The three client_ip_hash fields are all set or
// all empty.
type HTTPInfo struct {
	Method            string `json:"method"`
	Path              string `json:"path"`
	StatusCode        int    `json:"status_code"`
	ClientIPHash      string `json:"client_ip_hash,omitempty"`
	ClientIPHashAlg   string `json:"client_ip_hash_alg,omitempty"`
	ClientIPHashKeyID string `json:"client_ip_hash_key_id,omitempty"`
}

// Resource is the optional resource context.
type Resource struct {
	ResourceType string `json:"resource_type,omitempty"`
	ResourceID   string `json:"resource_id,omitempty"`
}

// eventError is the error of every event check: TALOS_INVALID_INPUT.
func eventError(msg string) error {
	return contracts.New(contracts.CodeInvalidInput, "audit: event: "+msg)
}

// CanonicalBytes returns the RFC 8785 canonical JSON of e without
// event_hash: the preimage of the event hash. It fails with
// TALOS_INVALID_INPUT if a meta value is not a scalar or a string is not
// valid UTF-8.
func (e *Event) CanonicalBytes() ([]byte, error) {
	return e.appendCanonical(nil, false)
}

// ComputeHash returns hex(sha256(CanonicalBytes())).
func (e *Event) ComputeHash() (string, error) {
	b, err := e.appendCanonical(make([]byte, 0, 512), false)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Seal validates e, sets EventHash and returns the canonical JSON of the
// sealed event (the bytes the log stores as its leaf).
func (e *Event) Seal() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e.seal(nil)
}

// seal sets EventHash and appends the sealed canonical bytes to dst.
func (e *Event) seal(dst []byte) ([]byte, error) {
	// The canonical form with event_hash is the form without it, with
	// "event_hash" inserted as the first member (it sorts first).
	start := len(dst)
	dst = append(dst, `{"event_hash":"`...)
	hashAt := len(dst)
	dst = append(dst, make([]byte, 2*sha256.Size)...)
	dst = append(dst, `",`...)
	bodyAt := len(dst)
	dst, err := e.appendCanonical(dst, false)
	if err != nil {
		return dst[:start], err
	}
	sum := sha256.Sum256(dst[bodyAt:])
	hex.Encode(dst[hashAt:hashAt+2*sha256.Size], sum[:])
	// Drop the '{' of the body: the body continues the object.
	copy(dst[bodyAt:], dst[bodyAt+1:])
	dst = dst[:len(dst)-1]
	e.EventHash = string(dst[hashAt : hashAt+2*sha256.Size])
	return dst, nil
}

// MarshalCanonical returns the canonical JSON of e including event_hash as
// it is set (it does not recompute the hash).
func (e *Event) MarshalCanonical() ([]byte, error) {
	return e.appendCanonical(nil, true)
}

// MarshalJSON is MarshalCanonical, so encoding/json writes the contract
// form (a nil Meta as {}, members in canonical order).
func (e Event) MarshalJSON() ([]byte, error) {
	return e.appendCanonical(nil, true)
}

// The event's member names, checked and quoted once.
var (
	nAuthMode          = contracts.MustName("auth_mode")
	nClientIPHash      = contracts.MustName("client_ip_hash")
	nClientIPHashAlg   = contracts.MustName("client_ip_hash_alg")
	nClientIPHashKeyID = contracts.MustName("client_ip_hash_key_id")
	nEventHash         = contracts.MustName("event_hash")
	nEventID           = contracts.MustName("event_id")
	nHTTP              = contracts.MustName("http")
	nMeta              = contracts.MustName("meta")
	nMethod            = contracts.MustName("method")
	nOutcome           = contracts.MustName("outcome")
	nPath              = contracts.MustName("path")
	nPrincipal         = contracts.MustName("principal")
	nPrincipalID       = contracts.MustName("principal_id")
	nRequestID         = contracts.MustName("request_id")
	nResource          = contracts.MustName("resource")
	nResourceID        = contracts.MustName("resource_id")
	nResourceType      = contracts.MustName("resource_type")
	nSchemaID          = contracts.MustName("schema_id")
	nSchemaVersion     = contracts.MustName("schema_version")
	nSignerKeyID       = contracts.MustName("signer_key_id")
	nStatusCode        = contracts.MustName("status_code")
	nSurfaceID         = contracts.MustName("surface_id")
	nTeamID            = contracts.MustName("team_id")
	nTs                = contracts.MustName("ts")
)

// appendCanonical writes the canonical form of e with the typed canonical
// encoder of package contracts, which checks that members come in RFC 8785
// order: event_hash, event_id, http, meta, outcome, principal, request_id,
// resource, schema_id, schema_version, surface_id, ts.
func (e *Event) appendCanonical(b []byte, withHash bool) ([]byte, error) {
	var w contracts.CanonicalEncoder
	start := b
	b = w.BeginObject(b)
	if withHash {
		b = w.Name(b, nEventHash)
		b = w.String(b, e.EventHash)
	}
	b = w.Name(b, nEventID)
	b = w.String(b, e.EventID)
	b = w.Name(b, nHTTP)
	b = w.BeginObject(b)
	h := &e.HTTP
	if h.ClientIPHash != "" || h.ClientIPHashAlg != "" || h.ClientIPHashKeyID != "" {
		b = w.Name(b, nClientIPHash)
		b = w.String(b, h.ClientIPHash)
		b = w.Name(b, nClientIPHashAlg)
		b = w.String(b, h.ClientIPHashAlg)
		b = w.Name(b, nClientIPHashKeyID)
		b = w.String(b, h.ClientIPHashKeyID)
	}
	b = w.Name(b, nMethod)
	b = w.String(b, h.Method)
	b = w.Name(b, nPath)
	b = w.String(b, h.Path)
	b = w.Name(b, nStatusCode)
	b = w.Int(b, int64(h.StatusCode))
	b = w.EndObject(b)
	b = w.Name(b, nMeta)
	b, err := writeMeta(&w, b, e.Meta)
	if err != nil {
		return start, err
	}
	b = w.Name(b, nOutcome)
	b = w.String(b, e.Outcome)
	p := &e.Principal
	b = w.Name(b, nPrincipal)
	b = w.BeginObject(b)
	b = w.Name(b, nAuthMode)
	b = w.String(b, p.AuthMode)
	b = w.Name(b, nPrincipalID)
	b = w.String(b, p.PrincipalID)
	if p.SignerKeyID != "" {
		b = w.Name(b, nSignerKeyID)
		b = w.String(b, p.SignerKeyID)
	}
	if p.TeamID != "" {
		b = w.Name(b, nTeamID)
		b = w.String(b, p.TeamID)
	}
	b = w.EndObject(b)
	b = w.Name(b, nRequestID)
	b = w.String(b, e.RequestID)
	if r := e.Resource; r != nil {
		b = w.Name(b, nResource)
		b = w.BeginObject(b)
		if r.ResourceID != "" {
			b = w.Name(b, nResourceID)
			b = w.String(b, r.ResourceID)
		}
		if r.ResourceType != "" {
			b = w.Name(b, nResourceType)
			b = w.String(b, r.ResourceType)
		}
		b = w.EndObject(b)
	}
	b = w.Name(b, nSchemaID)
	b = w.String(b, e.SchemaID)
	b = w.Name(b, nSchemaVersion)
	b = w.String(b, e.SchemaVersion)
	b = w.Name(b, nSurfaceID)
	b = w.String(b, e.SurfaceID)
	b = w.Name(b, nTs)
	b = w.String(b, e.TS)
	b = w.EndObject(b)
	out, err := w.Finish(b)
	if err != nil {
		return start, encodeError("", err)
	}
	return out, nil
}

// writeMeta appends the meta object with keys in RFC 8785 order. A value
// that is not a scalar is an error (TALOS_INVALID_INPUT).
func writeMeta(w *contracts.CanonicalEncoder, b []byte, meta map[string]any) ([]byte, error) {
	b = w.BeginObject(b)
	var stack [MaxMetaKeys]string
	keys := stack[:0]
	for k := range meta {
		keys = append(keys, k)
	}
	contracts.SortKeysUTF16(keys)
	for _, k := range keys {
		b = w.Key(b, k)
		var ok bool
		if b, ok = writeScalar(w, b, meta[k]); !ok {
			return b, eventError("meta values must be strings, numbers, booleans or null")
		}
	}
	return w.EndObject(b), nil
}

// writeScalar appends a meta value; it reports false for a type that is
// not a scalar. Values the encoder refuses (invalid UTF-8, unsafe integers,
// non-finite numbers, malformed json.Number) are left in w's error.
func writeScalar(w *contracts.CanonicalEncoder, b []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		b = w.Null(b)
	case bool:
		b = w.Bool(b, x)
	case string:
		b = w.String(b, x)
	case int:
		b = w.Int(b, int64(x))
	case int8:
		b = w.Int(b, int64(x))
	case int16:
		b = w.Int(b, int64(x))
	case int32:
		b = w.Int(b, int64(x))
	case int64:
		b = w.Int(b, x)
	case uint:
		b = w.Uint(b, uint64(x))
	case uint8:
		b = w.Uint(b, uint64(x))
	case uint16:
		b = w.Uint(b, uint64(x))
	case uint32:
		b = w.Uint(b, uint64(x))
	case uint64:
		b = w.Uint(b, x)
	case float32:
		b = w.Float(b, float64(x))
	case float64:
		b = w.Float(b, x)
	case json.Number:
		b = w.Number(b, string(x))
	default:
		return b, false
	}
	return b, true
}

// encodeError is the encoder's error as an event error (TALOS_INVALID_INPUT
// with the encoder's reason).
func encodeError(what string, err error) error {
	msg := "not encodable"
	var ce *contracts.Error
	if errors.As(err, &ce) {
		msg = strings.TrimPrefix(ce.Message, "canonical json: ")
	}
	return contracts.Wrap(contracts.CodeInvalidInput, "audit: event: "+what+msg, err)
}

// appendScalar appends the canonical JSON of one meta value to b. err is
// returned as is if it is already set.
func appendScalar(b []byte, v any, err error) ([]byte, error) {
	if err != nil {
		return b, err
	}
	var w contracts.CanonicalEncoder
	out, ok := writeScalar(&w, b, v)
	if !ok {
		return b, eventError("meta values must be strings, numbers, booleans or null")
	}
	out, werr := w.Finish(out)
	if werr != nil {
		return b, encodeError("meta ", werr)
	}
	return out, nil
}

// Validate checks every rule of the contract schema that a Go value can
// break: constants, the lowercase UUIDv7 event id, the millisecond UTC
// timestamp, lengths, the outcome and method enums, the exact principal
// shapes, the template path, the status range, the all-or-none client IP
// hash, and meta (at most 32 keys, scalar values, strings ≤ 1024
// characters). Errors are TALOS_INVALID_INPUT.
func (e *Event) Validate() error {
	switch {
	case e.SchemaID != EventSchemaID:
		return eventError("schema_id must be " + EventSchemaID)
	case e.SchemaVersion != EventSchemaVersion:
		return eventError("schema_version must be " + EventSchemaVersion)
	case !contracts.IsUUIDv7(e.EventID):
		return eventError("event_id is not a lowercase UUIDv7")
	case !validTS(e.TS):
		return eventError("ts is not YYYY-MM-DDTHH:MM:SS.mmmZ")
	case !lenBetween(e.RequestID, 1, 128):
		return eventError("request_id must be 1 to 128 characters")
	case !lenBetween(e.SurfaceID, 1, 200):
		return eventError("surface_id must be 1 to 200 characters")
	}
	switch e.Outcome {
	case OutcomeSuccess, OutcomeFailure, OutcomeDenied:
	default:
		return eventError("outcome must be success, failure or denied")
	}
	if err := e.Principal.validate(); err != nil {
		return err
	}
	if err := e.HTTP.validate(); err != nil {
		return err
	}
	if r := e.Resource; r != nil {
		if r.ResourceType != "" && !lenBetween(r.ResourceType, 1, 100) || r.ResourceID != "" && !lenBetween(r.ResourceID, 1, 200) {
			return eventError("resource fields too long")
		}
	}
	return validateMeta(e.Meta)
}

func (p *Principal) validate() error {
	switch p.AuthMode {
	case AuthSigned:
		if p.SignerKeyID == "" || !lenBetween(p.SignerKeyID, 1, 200) {
			return eventError("signed principal needs signer_key_id (1 to 200 characters)")
		}
	case AuthBearer:
		if p.SignerKeyID != "" {
			return eventError("bearer principal must not have signer_key_id")
		}
	case AuthAnonymous:
		if p.PrincipalID != "anonymous" || p.TeamID != "" || p.SignerKeyID != "" {
			return eventError("anonymous principal is exactly {auth_mode, principal_id:\"anonymous\"}")
		}
		return nil
	default:
		return eventError("principal auth_mode must be signed, bearer or anonymous")
	}
	if !lenBetween(p.PrincipalID, 1, 200) || p.PrincipalID == "anonymous" {
		return eventError("principal_id must be 1 to 200 characters and not \"anonymous\"")
	}
	if !lenBetween(p.TeamID, 1, 200) {
		return eventError("principal needs team_id (1 to 200 characters)")
	}
	return nil
}

func (h *HTTPInfo) validate() error {
	switch h.Method {
	case "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD":
	default:
		return eventError("http method not allowed")
	}
	if !lenBetween(h.Path, 1, 500) || h.Path[0] != '/' || bytes.IndexByte([]byte(h.Path), '?') >= 0 {
		return eventError("http path must be a template path starting with / and without a query")
	}
	if h.StatusCode < 100 || h.StatusCode > 599 {
		return eventError("http status_code must be 100 to 599")
	}
	set := 0
	for _, f := range []string{h.ClientIPHash, h.ClientIPHashAlg, h.ClientIPHashKeyID} {
		if f != "" {
			set++
		}
	}
	switch set {
	case 0:
		return nil
	case 3:
	default:
		return eventError("client_ip_hash, client_ip_hash_alg and client_ip_hash_key_id are all or none")
	}
	if !isLowerHex64(h.ClientIPHash) {
		return eventError("client_ip_hash is not 64 lowercase hex digits")
	}
	if h.ClientIPHashAlg != IPHashAlg {
		return eventError("client_ip_hash_alg must be " + IPHashAlg)
	}
	if !lenBetween(h.ClientIPHashKeyID, 1, 200) {
		return eventError("client_ip_hash_key_id must be 1 to 200 characters")
	}
	return nil
}

func validateMeta(meta map[string]any) error {
	if len(meta) > MaxMetaKeys {
		return eventError("meta has more than 32 keys")
	}
	for k, v := range meta {
		if !utf8.ValidString(k) {
			return eventError("meta key is not valid UTF-8")
		}
		switch x := v.(type) {
		case string:
			if utf8.RuneCountInString(x) > MaxMetaString {
				return eventError("meta string longer than 1024 characters")
			}
		case nil, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64, json.Number:
		default:
			return eventError("meta values must be strings, numbers, booleans or null")
		}
	}
	return nil
}

func lenBetween(s string, lo, hi int) bool {
	if !utf8.ValidString(s) {
		return false
	}
	n := utf8.RuneCountInString(s)
	return n >= lo && n <= hi
}

func isLowerHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validTS reports whether s is YYYY-MM-DDTHH:MM:SS.mmmZ and a real time.
func validTS(s string) bool {
	if len(s) != len(TimeFormat) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 4, 7:
			if c != '-' {
				return false
			}
		case 10:
			if c != 'T' {
				return false
			}
		case 13, 16:
			if c != ':' {
				return false
			}
		case 19:
			if c != '.' {
				return false
			}
		case 23:
			if c != 'Z' {
				return false
			}
		default:
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	num := func(i, j int) int {
		n := 0
		for ; i < j; i++ {
			n = n*10 + int(s[i]-'0')
		}
		return n
	}
	year, month, day := num(0, 4), num(5, 7), num(8, 10)
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) {
		return false
	}
	return num(11, 13) < 24 && num(14, 16) < 60 && num(17, 19) < 60
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// TimeFormat is the contract timestamp layout (UTC, milliseconds).
const TimeFormat = "2006-01-02T15:04:05.000Z"

// Time returns the event's timestamp.
func (e *Event) Time() (time.Time, error) {
	t, err := time.Parse(TimeFormat, e.TS)
	if err != nil {
		return time.Time{}, eventError("ts is not YYYY-MM-DDTHH:MM:SS.mmmZ")
	}
	return t, nil
}

// ParseEvent parses and verifies a sealed event from outside: at most
// [MaxEventSize] bytes of JSON without duplicate keys, lone surrogates or
// unsafe integers, no unknown members, every schema rule ([Event.Validate]),
// and an event_hash that recomputes. Errors are *contracts.Error:
// TALOS_INVALID_INPUT, or TGA_HASH_CHAIN_BROKEN ([ErrChainBroken]) for a
// hash mismatch. Meta numbers come back as json.Number.
func ParseEvent(raw []byte) (*Event, error) {
	if len(raw) > MaxEventSize {
		return nil, eventError("larger than " + strconv.Itoa(MaxEventSize) + " bytes")
	}
	if err := contracts.CheckJSON(raw, false); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var e Event
	if err := dec.Decode(&e); err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "audit: event: does not match the contract shape", err)
	}
	if dec.More() {
		return nil, eventError("trailing data")
	}
	if err := e.checkPresence(raw); err != nil {
		return nil, err
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	want := e.EventHash
	if !isLowerHex64(want) {
		return nil, eventError("event_hash is not 64 lowercase hex digits")
	}
	got, err := e.ComputeHash()
	if err != nil {
		return nil, err
	}
	if got != want {
		return nil, contracts.New(contracts.CodeTGAHashChainBroken, "audit: event: event_hash does not match the event")
	}
	return &e, nil
}

// checkPresence rejects members that encoding/json would silently accept:
// null for an object or string member, and empty optional strings, which
// the Go form cannot tell from absent ones.
func (e *Event) checkPresence(raw []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return eventError("not an object")
	}
	for _, k := range []string{"schema_id", "schema_version", "event_id", "ts", "request_id", "surface_id",
		"outcome", "principal", "http", "meta", "event_hash"} {
		v, ok := top[k]
		if !ok || string(v) == "null" {
			return eventError("missing " + k)
		}
	}
	if v, ok := top["resource"]; ok && string(v) == "null" {
		return eventError("resource is null")
	}
	if e.Resource != nil && e.Resource.ResourceID == "" && e.Resource.ResourceType == "" && string(top["resource"]) != "{}" {
		return eventError("resource has empty members")
	}
	var sub struct {
		Principal map[string]json.RawMessage `json:"principal"`
		HTTP      map[string]json.RawMessage `json:"http"`
		Resource  map[string]json.RawMessage `json:"resource"`
	}
	if err := json.Unmarshal(raw, &sub); err != nil {
		return eventError("principal, http and resource must be objects")
	}
	for _, m := range []map[string]json.RawMessage{sub.Principal, sub.HTTP, sub.Resource} {
		for k, v := range m {
			if string(v) == "null" || string(v) == `""` {
				return eventError(k + " is null or empty")
			}
		}
	}
	if _, ok := sub.HTTP["status_code"]; !ok {
		return eventError("missing http.status_code")
	}
	return nil
}
