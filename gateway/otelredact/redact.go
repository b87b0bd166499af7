package otelredact

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Mask replaces every redacted value.
const Mask = "[REDACTED]"

// maxSecrets bounds the registered secret values (the scan is linear in
// their number).
const maxSecrets = 4096

// minSecretLen is the shortest string AddSecret accepts: shorter ones would
// mask ordinary words.
const minSecretLen = 8

// entropyRunLen is the shortest base64/base64url run that the value scan
// treats as key material (a 24-byte value encodes to 32 characters).
const entropyRunLen = 32

// defaultSensitive are the key fragments (lowercase) whose values are always
// masked: HTTP credentials and Talos attestation headers, tokens, signatures,
// nonces, ciphertexts, frame payloads and key material.
var defaultSensitive = []string{
	"authorization", "cookie", "x-talos-", "x_talos_", "talos-attestation",
	"token", "capability", "secret", "password", "passwd", "credential",
	"signature", "nonce", "ciphertext", "payload", "private", "seed",
	"api_key", "apikey", "api-key", "kek", "master_key", "envelope", "dsn",
}

// safeSuffixes mark non-header keys whose values are digests or identifiers,
// never secrets (capability_hash, config.digest, key_id).
var safeSuffixes = []string{"_hash", ".hash", "_digest", ".digest", "_id", ".id"}

// Config configures a [Redactor]. The zero value redacts with the defaults.
type Config struct {
	// SensitiveKeys adds key fragments (matched case-insensitively as
	// substrings) to the built-in list.
	SensitiveKeys []string
}

// A Redactor masks secrets in strings and OpenTelemetry span data. It is safe
// for concurrent use.
type Redactor struct {
	sensitive []string

	mu      sync.RWMutex // guards secrets and seen
	secrets []string
	seen    map[string]bool
}

// New returns a Redactor.
func New(cfg Config) *Redactor {
	s := append([]string(nil), defaultSensitive...)
	for _, k := range cfg.SensitiveKeys {
		if k = strings.ToLower(strings.TrimSpace(k)); k != "" {
			s = append(s, k)
		}
	}
	return &Redactor{sensitive: s}
}

// AddSecret registers a known secret value (an admin credential, a master
// key's text form): every occurrence of it in any exported string is masked.
// Values shorter than 8 bytes are ignored.
func (r *Redactor) AddSecret(secret string) {
	if len(secret) < minSecretLen {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[secret] || len(r.secrets) >= maxSecrets {
		return
	}
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	r.seen[secret] = true
	r.secrets = append(r.secrets, secret)
}

// AddSecretBytes registers a secret byte string: as text when it is
// printable, and in its base64url, base64 and hex encodings, the forms in
// which binary secrets end up in strings.
func (r *Redactor) AddSecretBytes(secret []byte) {
	if len(secret) == 0 {
		return
	}
	if utf8.Valid(secret) {
		r.AddSecret(string(secret))
	}
	r.AddSecret(base64.RawURLEncoding.EncodeToString(secret))
	r.AddSecret(base64.StdEncoding.EncodeToString(secret))
	r.AddSecret(hex.EncodeToString(secret))
}

// SensitiveKey reports whether values under key are masked whole.
func (r *Redactor) SensitiveKey(key string) bool {
	k := strings.ToLower(key)
	hit := false
	for _, s := range r.sensitive {
		if strings.Contains(k, s) {
			hit = true
			break
		}
	}
	if !hit {
		return false
	}
	if strings.Contains(k, "header") || strings.Contains(k, "talos-") || strings.Contains(k, "authorization") {
		return true // headers are masked whole, whatever their suffix
	}
	for _, suf := range safeSuffixes {
		if strings.HasSuffix(k, suf) {
			return false
		}
	}
	return true
}

var (
	// "Bearer abc", "Basic abc": an auth scheme and its credential.
	authSchemeRE = regexp.MustCompile(`(?i)\b(bearer)(\s+)[^\s,;"']{4,}|\b(Basic)(\s+)[A-Za-z0-9+/=]{8,}`)
	// The password in a URL's userinfo (connection strings).
	userinfoRE = regexp.MustCompile(`(://[^:/@\s]*:)[^@\s]+@`)
	// "key": "value" inside JSON text.
	jsonStringRE = regexp.MustCompile(`"([^"\\]{1,64})"(\s*:\s*)"((?:[^"\\]|\\.)*)"`)
	// key=value inside URLs, forms and log-style text.
	pairRE = regexp.MustCompile(`([A-Za-z0-9_.\-]{1,64})(=)([^&\s"',;]+)`)
	// key: value inside header dumps and error text.
	colonRE = regexp.MustCompile(`(?i)\b(authorization|x-talos-[a-z0-9\-]+|cookie|set-cookie)(:\s*)[^\r\n]+`)
)

// String masks the secrets inside s: registered secret values, credentials
// after an auth scheme, values of sensitive keys in JSON, key=value and
// header text, and long base64 runs that look like key material (hex digests
// and did:key identifiers are kept).
func (r *Redactor) String(s string) string {
	if s == "" {
		return s
	}
	r.mu.RLock()
	for _, sec := range r.secrets {
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, Mask)
		}
	}
	r.mu.RUnlock()
	// Each pattern runs only when a cheap check says it can match: most
	// span strings (routes, methods, user agents) skip every regexp.
	if strings.IndexByte(s, ':') >= 0 && (containsFold(s, "authorization") || containsFold(s, "x-talos-") || containsFold(s, "cookie")) {
		s = colonRE.ReplaceAllString(s, "${1}${2}"+Mask)
	}
	if containsFold(s, "bearer") || strings.Contains(s, "Basic") {
		s = authSchemeRE.ReplaceAllString(s, "${1}${3}${2}${4}"+Mask)
	}
	if strings.Contains(s, "://") && strings.IndexByte(s, '@') >= 0 {
		s = userinfoRE.ReplaceAllString(s, "${1}"+Mask+"@")
	}
	if strings.IndexByte(s, '"') >= 0 && strings.IndexByte(s, ':') >= 0 {
		s = jsonStringRE.ReplaceAllStringFunc(s, func(m string) string {
			sub := jsonStringRE.FindStringSubmatch(m)
			if r.SensitiveKey(sub[1]) {
				return `"` + sub[1] + `"` + sub[2] + `"` + Mask + `"`
			}
			return m
		})
	}
	if strings.IndexByte(s, '=') >= 0 {
		s = pairRE.ReplaceAllStringFunc(s, func(m string) string {
			sub := pairRE.FindStringSubmatch(m)
			if r.SensitiveKey(sub[1]) {
				return sub[1] + "=" + Mask
			}
			return m
		})
	}
	return maskKeyMaterial(s)
}

// maskKeyMaterial replaces base64/base64url runs of at least entropyRunLen
// characters that look like key material (see looksLikeKeyMaterial), except
// did:key identifiers.
func maskKeyMaterial(s string) string {
	if len(s) < entropyRunLen {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		if !isB64(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isB64(s[j]) {
			j++
		}
		end := j
		for k := 0; k < 2 && end < len(s) && s[end] == '='; k++ {
			end++
		}
		if j-i >= entropyRunLen && looksLikeKeyMaterial(s[i:end]) && !strings.HasSuffix(s[:i], "did:key:") {
			b.WriteString(s[last:i])
			b.WriteString(Mask)
			last = end
		}
		i = end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func isB64(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '_' || c == '-'
}

// containsFold reports whether s contains sub (lower-case ASCII), ignoring
// ASCII case, without allocating.
func containsFold(s, sub string) bool {
	n := len(sub)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

// looksLikeKeyMaterial reports whether a long base64 run mixes at least two
// of upper case, lower case and digits, and is not plain hex (digests are
// not secrets; identifiers like "talos_config_versions_pkey" are one class).
func looksLikeKeyMaterial(run string) bool {
	var upper, lower, digit, nonHex bool
	for i := 0; i < len(run); i++ {
		c := run[i]
		switch {
		case c >= 'A' && c <= 'Z':
			upper, nonHex = true, true
		case c >= 'a' && c <= 'z':
			lower = true
			if c > 'f' {
				nonHex = true
			}
		case c >= '0' && c <= '9':
			digit = true
		case c == '=', c == '-':
			// padding; UUIDs are hex with dashes
		default:
			nonHex = true
		}
	}
	if len(strings.TrimRight(run, "=")) < entropyRunLen || !nonHex {
		return false
	}
	n := 0
	for _, ok := range []bool{upper, lower, digit} {
		if ok {
			n++
		}
	}
	return n >= 2
}

// KeyValue returns kv with its value masked whole when its key is sensitive,
// and scanned by [Redactor.String] otherwise (recursively for slices and
// maps). Byte slices are always masked.
func (r *Redactor) KeyValue(kv attribute.KeyValue) attribute.KeyValue {
	if r.SensitiveKey(string(kv.Key)) {
		if kv.Value.Type() == attribute.BOOL || kv.Value.Type() == attribute.EMPTY {
			return kv
		}
		return attribute.String(string(kv.Key), Mask)
	}
	return attribute.KeyValue{Key: kv.Key, Value: r.value(kv.Value)}
}

func (r *Redactor) value(v attribute.Value) attribute.Value {
	switch v.Type() {
	case attribute.STRING:
		return attribute.StringValue(r.String(v.AsString()))
	case attribute.STRINGSLICE:
		in := v.AsStringSlice()
		out := make([]string, len(in))
		for i, s := range in {
			out[i] = r.String(s)
		}
		return attribute.StringSliceValue(out)
	case attribute.BYTESLICE:
		return attribute.StringValue(Mask)
	case attribute.SLICE:
		in := v.AsSlice()
		out := make([]attribute.Value, len(in))
		for i, e := range in {
			out[i] = r.value(e)
		}
		return attribute.SliceValue(out...)
	case attribute.MAP:
		return attribute.MapValue(r.KeyValues(v.AsMap())...)
	}
	return v
}

// KeyValues applies [Redactor.KeyValue] to each element of kvs, returning a
// new slice.
func (r *Redactor) KeyValues(kvs []attribute.KeyValue) []attribute.KeyValue {
	if kvs == nil {
		return nil
	}
	out := make([]attribute.KeyValue, len(kvs))
	for i, kv := range kvs {
		out[i] = r.KeyValue(kv)
	}
	return out
}

// Span returns a copy of s with its name, attributes, events (names and
// attributes), links' attributes and status description redacted.
func (r *Redactor) Span(s sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
	stub := tracetest.SpanStubFromReadOnlySpan(s)
	stub.Name = r.String(stub.Name)
	stub.Attributes = r.KeyValues(stub.Attributes)
	if stub.Events != nil {
		ev := make([]sdktrace.Event, len(stub.Events))
		for i, e := range stub.Events {
			e.Name = r.String(e.Name)
			e.Attributes = r.KeyValues(e.Attributes)
			ev[i] = e
		}
		stub.Events = ev
	}
	if stub.Links != nil {
		ls := make([]sdktrace.Link, len(stub.Links))
		for i, l := range stub.Links {
			l.Attributes = r.KeyValues(l.Attributes)
			ls[i] = l
		}
		stub.Links = ls
	}
	stub.Status.Description = r.String(stub.Status.Description)
	return stub.Snapshot()
}

// An Exporter redacts every span before handing it to the exporter it wraps.
// It is safe for concurrent use when the wrapped exporter is.
type Exporter struct {
	next sdktrace.SpanExporter
	r    *Redactor
}

var _ sdktrace.SpanExporter = (*Exporter)(nil)

// NewExporter wraps next so that it only ever sees spans redacted by r.
func NewExporter(next sdktrace.SpanExporter, r *Redactor) *Exporter {
	return &Exporter{next: next, r: r}
}

// ExportSpans redacts spans and exports the copies.
func (e *Exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, s := range spans {
		out[i] = e.r.Span(s)
	}
	return e.next.ExportSpans(ctx, out)
}

// Shutdown shuts the wrapped exporter down.
func (e *Exporter) Shutdown(ctx context.Context) error { return e.next.Shutdown(ctx) }
