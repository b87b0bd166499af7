package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
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
	return contracts.Errorf(contracts.CodeInvalidInput, "audit: event: "+msg)
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

// appendCanonical writes the canonical form of e. Members are written in
// sorted order: event_hash, event_id, http, meta, outcome, principal,
// request_id, resource, schema_id, schema_version, surface_id, ts.
func (e *Event) appendCanonical(b []byte, withHash bool) ([]byte, error) {
	var err error
	b = append(b, '{')
	if withHash {
		b = append(b, `"event_hash":`...)
		b = appendString(b, e.EventHash, &err)
		b = append(b, ',')
	}
	b = append(b, `"event_id":`...)
	b = appendString(b, e.EventID, &err)
	b = append(b, `,"http":{`...)
	h := &e.HTTP
	if h.ClientIPHash != "" || h.ClientIPHashAlg != "" || h.ClientIPHashKeyID != "" {
		b = append(b, `"client_ip_hash":`...)
		b = appendString(b, h.ClientIPHash, &err)
		b = append(b, `,"client_ip_hash_alg":`...)
		b = appendString(b, h.ClientIPHashAlg, &err)
		b = append(b, `,"client_ip_hash_key_id":`...)
		b = appendString(b, h.ClientIPHashKeyID, &err)
		b = append(b, ',')
	}
	b = append(b, `"method":`...)
	b = appendString(b, h.Method, &err)
	b = append(b, `,"path":`...)
	b = appendString(b, h.Path, &err)
	b = append(b, `,"status_code":`...)
	b = strconv.AppendInt(b, int64(h.StatusCode), 10)
	b = append(b, `},"meta":`...)
	b, err2 := appendMeta(b, e.Meta)
	if err2 != nil {
		return b, err2
	}
	b = append(b, `,"outcome":`...)
	b = appendString(b, e.Outcome, &err)
	p := &e.Principal
	b = append(b, `,"principal":{"auth_mode":`...)
	b = appendString(b, p.AuthMode, &err)
	b = append(b, `,"principal_id":`...)
	b = appendString(b, p.PrincipalID, &err)
	if p.SignerKeyID != "" {
		b = append(b, `,"signer_key_id":`...)
		b = appendString(b, p.SignerKeyID, &err)
	}
	if p.TeamID != "" {
		b = append(b, `,"team_id":`...)
		b = appendString(b, p.TeamID, &err)
	}
	b = append(b, `},"request_id":`...)
	b = appendString(b, e.RequestID, &err)
	if r := e.Resource; r != nil {
		b = append(b, `,"resource":{`...)
		if r.ResourceID != "" {
			b = append(b, `"resource_id":`...)
			b = appendString(b, r.ResourceID, &err)
			if r.ResourceType != "" {
				b = append(b, ',')
			}
		}
		if r.ResourceType != "" {
			b = append(b, `"resource_type":`...)
			b = appendString(b, r.ResourceType, &err)
		}
		b = append(b, '}')
	}
	b = append(b, `,"schema_id":`...)
	b = appendString(b, e.SchemaID, &err)
	b = append(b, `,"schema_version":`...)
	b = appendString(b, e.SchemaVersion, &err)
	b = append(b, `,"surface_id":`...)
	b = appendString(b, e.SurfaceID, &err)
	b = append(b, `,"ts":`...)
	b = appendString(b, e.TS, &err)
	b = append(b, '}')
	return b, err
}

// appendMeta writes the meta object with keys in RFC 8785 order (UTF-16
// code units; for keys without supplementary-plane characters this is byte
// order, which is what sortKeys falls back to for them).
func appendMeta(b []byte, meta map[string]any) ([]byte, error) {
	if len(meta) == 0 {
		return append(b, "{}"...), nil
	}
	var stack [MaxMetaKeys]string
	keys := stack[:0]
	for k := range meta {
		keys = append(keys, k)
	}
	sortKeys(keys)
	var err error
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k, &err)
		b = append(b, ':')
		b, err = appendScalar(b, meta[k], err)
	}
	return append(b, '}'), err
}

func appendScalar(b []byte, v any, err error) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), err
	case bool:
		return strconv.AppendBool(b, x), err
	case string:
		return appendString(b, x, &err), err
	case int:
		return appendInt(b, int64(x), err)
	case int8:
		return appendInt(b, int64(x), err)
	case int16:
		return appendInt(b, int64(x), err)
	case int32:
		return appendInt(b, int64(x), err)
	case int64:
		return appendInt(b, x, err)
	case uint:
		return appendUint(b, uint64(x), err)
	case uint8:
		return appendUint(b, uint64(x), err)
	case uint16:
		return appendUint(b, uint64(x), err)
	case uint32:
		return appendUint(b, uint64(x), err)
	case uint64:
		return appendUint(b, x, err)
	case float32:
		return appendFloat(b, float64(x), err)
	case float64:
		return appendFloat(b, x, err)
	case json.Number:
		canon, cerr := contracts.Canonicalize([]byte(x))
		if cerr != nil || len(canon) == 0 || (canon[0] != '-' && (canon[0] < '0' || canon[0] > '9')) {
			return b, firstErr(err, eventError("meta number is not a JSON number"))
		}
		return append(b, canon...), err
	}
	return b, firstErr(err, eventError("meta values must be strings, numbers, booleans or null"))
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func appendInt(b []byte, x int64, err error) ([]byte, error) {
	if x > contracts.MaxSafeInteger || x < -contracts.MaxSafeInteger {
		return b, firstErr(err, eventError("meta integer beyond ±(2^53−1)"))
	}
	return strconv.AppendInt(b, x, 10), err
}

func appendUint(b []byte, x uint64, err error) ([]byte, error) {
	if x > contracts.MaxSafeInteger {
		return b, firstErr(err, eventError("meta integer beyond 2^53−1"))
	}
	return strconv.AppendUint(b, x, 10), err
}

func appendFloat(b []byte, x float64, err error) ([]byte, error) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return b, firstErr(err, eventError("meta number is not finite"))
	}
	if x == math.Trunc(x) && math.Abs(x) <= contracts.MaxSafeInteger {
		return strconv.AppendInt(b, int64(x), 10), err
	}
	// Non-integral numbers take the ECMAScript form of the canonical encoder.
	js, _ := json.Marshal(x)
	canon, cerr := contracts.Canonicalize(js)
	if cerr != nil {
		return b, firstErr(err, eventError("meta number out of range"))
	}
	return append(b, canon...), err
}

// appendString writes s as an RFC 8785 string. Invalid UTF-8 sets *err.
func appendString(b []byte, s string, err *error) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 && *err == nil {
				*err = eventError("string is not valid UTF-8")
			}
			i += size
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"':
			b = append(b, `\"`...)
		case '\\':
			b = append(b, `\\`...)
		case '\b':
			b = append(b, `\b`...)
		case '\t':
			b = append(b, `\t`...)
		case '\n':
			b = append(b, `\n`...)
		case '\f':
			b = append(b, `\f`...)
		case '\r':
			b = append(b, `\r`...)
		default:
			const hexDigits = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// sortKeys sorts keys by UTF-16 code units (RFC 8785 §3.2.3).
func sortKeys(keys []string) {
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && lessUTF16(keys[j], keys[j-1]); j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
}

func lessUTF16(a, b string) bool {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			return utf16Key(ra) < utf16Key(rb)
		}
		a, b = a[na:], b[nb:]
	}
	return a == "" && b != ""
}

// utf16Key maps a rune to a value ordered like its first UTF-16 code unit,
// breaking ties by the rune.
func utf16Key(r rune) uint64 {
	if r >= 0x10000 {
		hi := 0xD800 + (uint64(r)-0x10000)>>10
		return hi<<21 | uint64(r)
	}
	return uint64(r) << 21
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
		return nil, contracts.Errorf(contracts.CodeTGAHashChainBroken, "audit: event: event_hash does not match the event")
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
