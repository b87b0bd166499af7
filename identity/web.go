package identity

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/talosgo/talos/contracts"
)

// WebResolverConfig configures a WebResolver. The zero value is usable.
type WebResolverConfig struct {
	// Client performs the HTTPS requests. If nil, a client with default
	// transport settings is used. The resolver never follows redirects,
	// whatever the client's CheckRedirect says. To defend against
	// server-side request forgery, give a client whose dialer refuses
	// private and loopback addresses when DIDs come from untrusted parties.
	Client *http.Client
	// Timeout bounds one resolution, including reading the body. If zero,
	// DefaultResolveTimeout is used.
	Timeout time.Duration
	// MaxDocumentSize bounds the document in bytes. If zero,
	// DefaultMaxDocumentSize is used.
	MaxDocumentSize int64
	// CacheTTL is how long a resolved document is reused. If zero,
	// DefaultCacheTTL is used; if negative, nothing is cached.
	CacheTTL time.Duration
	// CacheSize bounds the number of cached documents. If zero,
	// DefaultCacheSize is used.
	CacheSize int
	// Now returns the current time, for cache expiry. If nil, time.Now is used.
	Now func() time.Time
}

// A WebResolver resolves did:web DIDs (W3C did:web method) over HTTPS:
// did:web:example.com is fetched from https://example.com/.well-known/did.json
// and did:web:example.com:user:alice from https://example.com/user/alice/did.json.
// Only Ed25519 verification methods are read (Ed25519VerificationKey2020
// and Multikey with publicKeyMultibase, Ed25519VerificationKey2018 with
// publicKeyBase58, JsonWebKey2020 with an OKP/Ed25519 publicKeyJwk).
//
// Documents are cached for CacheTTL. A WebResolver is safe for concurrent use.
type WebResolver struct {
	client  *http.Client
	timeout time.Duration
	maxSize int64
	ttl     time.Duration
	size    int
	now     func() time.Time

	mu    sync.Mutex // guards cache
	cache map[string]cachedDoc
}

type cachedDoc struct {
	doc     *Document
	expires time.Time
}

var _ Resolver = (*WebResolver)(nil)

// NewWebResolver returns a did:web resolver configured by cfg.
func NewWebResolver(cfg WebResolverConfig) *WebResolver {
	var c http.Client
	if cfg.Client != nil {
		c = *cfg.Client
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultResolveTimeout
	}
	if cfg.MaxDocumentSize <= 0 {
		cfg.MaxDocumentSize = DefaultMaxDocumentSize
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &WebResolver{
		client: &c, timeout: cfg.Timeout, maxSize: cfg.MaxDocumentSize,
		ttl: cfg.CacheTTL, size: cfg.CacheSize, now: cfg.Now,
		cache: make(map[string]cachedDoc),
	}
}

// Resolve implements Resolver. The returned document is the caller's to
// modify.
func (r *WebResolver) Resolve(ctx context.Context, did string) (*Document, error) {
	u, err := DIDWebURL(did)
	if err != nil {
		return nil, err
	}
	if doc := r.cached(did); doc != nil {
		return doc, nil
	}
	doc, err := r.fetch(ctx, did, u)
	if err != nil {
		return nil, err
	}
	r.store(did, doc)
	return doc.clone(), nil
}

func (r *WebResolver) cached(did string) *Document {
	if r.ttl < 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.cache[did]
	if !ok {
		return nil
	}
	if !r.now().Before(e.expires) {
		delete(r.cache, did)
		return nil
	}
	return e.doc.clone()
}

func (r *WebResolver) store(did string, doc *Document) {
	if r.ttl < 0 {
		return
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cache) >= r.size {
		for k, e := range r.cache {
			if !now.Before(e.expires) {
				delete(r.cache, k)
			}
		}
		// Still full: drop arbitrary entries. This is a cache, so
		// forgetting a live entry costs only a refetch.
		for k := range r.cache {
			if len(r.cache) < r.size {
				break
			}
			delete(r.cache, k)
		}
	}
	r.cache[did] = cachedDoc{doc: doc, expires: now.Add(r.ttl)}
}

func (r *WebResolver) fetch(ctx context.Context, did, u string) (*Document, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "identity: did:web: bad URL", err)
	}
	req.Header.Set("Accept", "application/did+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, contracts.Wrap(contracts.CodeTransportTimeout, "identity: did:web: fetch timed out", err).WithRetryable(true)
		}
		return nil, contracts.Wrap(contracts.CodeTransportError, "identity: did:web: fetch failed", err).WithRetryable(true)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, contracts.New(contracts.CodeNotFound, "identity: did:web: document not found")
	case resp.StatusCode != http.StatusOK:
		return nil, contracts.New(contracts.CodeTransportError, "identity: did:web: unexpected HTTP status "+resp.Status).WithRetryable(resp.StatusCode >= 500)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.maxSize+1))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, contracts.Wrap(contracts.CodeTransportTimeout, "identity: did:web: reading timed out", err).WithRetryable(true)
		}
		return nil, contracts.Wrap(contracts.CodeTransportError, "identity: did:web: reading failed", err).WithRetryable(true)
	}
	if int64(len(body)) > r.maxSize {
		return nil, contracts.New(contracts.CodeInvalidInput, "identity: did:web: document exceeds the size limit")
	}
	return ParseDocument(did, body)
}

// DIDWebURL returns the HTTPS URL of the document of a did:web DID. The
// domain may carry a port encoded as %3A; path segments are limited to
// unreserved characters (no percent-encoding, no "." or ".."), so a DID
// cannot address anything but a did.json file. DID URLs (with a path,
// query or fragment) are rejected. Errors have code TALOS_INVALID_INPUT.
func DIDWebURL(did string) (string, error) {
	bad := func(msg string) (string, error) {
		return "", contracts.New(contracts.CodeInvalidInput, "identity: invalid did:web: "+msg)
	}
	if len(did) > maxDIDWebLength {
		return bad("too long")
	}
	rest, ok := strings.CutPrefix(did, "did:web:")
	if !ok {
		return bad(`missing "did:web:" prefix`)
	}
	parts := strings.Split(rest, ":")
	host := parts[0]
	name, port, hasPort := strings.Cut(host, "%3A")
	if !hasPort {
		name, port, hasPort = strings.Cut(host, "%3a")
	}
	if !validHostname(name) {
		return bad("bad domain name")
	}
	if hasPort && !validPort(port) {
		return bad("bad port")
	}
	var b strings.Builder
	b.WriteString("https://")
	b.WriteString(strings.ToLower(name))
	if hasPort {
		b.WriteString(":")
		b.WriteString(port)
	}
	if len(parts) == 1 {
		b.WriteString("/.well-known/did.json")
		return b.String(), nil
	}
	for _, seg := range parts[1:] {
		if !validSegment(seg) {
			return bad("bad path segment")
		}
		b.WriteString("/")
		b.WriteString(seg)
	}
	b.WriteString("/did.json")
	return b.String(), nil
}

func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 || p[0] == '0' {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n <= 65535
}

func validSegment(s string) bool {
	if s == "" || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// docJSON is the subset of a DID document (W3C DID Core) that is read.
type docJSON struct {
	ID                 string            `json:"id"`
	VerificationMethod []vmJSON          `json:"verificationMethod"`
	Authentication     []json.RawMessage `json:"authentication"`
	AssertionMethod    []json.RawMessage `json:"assertionMethod"`
}

type vmJSON struct {
	ID                 string   `json:"id"`
	Type               string   `json:"type"`
	Controller         string   `json:"controller"`
	PublicKeyMultibase string   `json:"publicKeyMultibase"`
	PublicKeyBase58    string   `json:"publicKeyBase58"`
	PublicKeyJwk       *jwkJSON `json:"publicKeyJwk"`
}

type jwkJSON struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	D   string `json:"d"`
}

// ParseDocument parses the JSON DID document of did, keeping its Ed25519
// verification methods. The document's id must equal did; duplicate JSON
// keys are rejected; relative method ids ("#key-1") are made absolute;
// relationships may reference methods or embed them. A method that carries
// private key material ("d" in a JWK) makes the document invalid. Errors
// have code TALOS_INVALID_INPUT.
func ParseDocument(did string, raw []byte) (*Document, error) {
	bad := func(msg string) (*Document, error) {
		return nil, contracts.New(contracts.CodeInvalidInput, "identity: invalid DID document: "+msg)
	}
	if err := contracts.CheckJSON(raw, false); err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "identity: invalid DID document: bad JSON", err)
	}
	var dj docJSON
	if err := json.Unmarshal(raw, &dj); err != nil {
		return bad("unexpected shape")
	}
	if dj.ID != did {
		return bad("id does not match the DID")
	}
	doc := &Document{ID: did}
	abs := func(id string) string {
		if strings.HasPrefix(id, "#") {
			return did + id
		}
		return id
	}
	addMethod := func(vm vmJSON) error {
		if len(doc.VerificationMethods) >= maxVerificationMethods {
			return errors.New("too many verification methods")
		}
		pub, ok, err := vmKey(vm)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		id := abs(vm.ID)
		if id == "" || !strings.HasPrefix(id, did+"#") {
			return errors.New("verification method id is not a fragment of the DID")
		}
		if _, dup := doc.Method(id); dup {
			return errors.New("duplicate verification method id")
		}
		doc.VerificationMethods = append(doc.VerificationMethods, VerificationMethod{
			ID: id, Type: vm.Type, Controller: vm.Controller, PublicKey: pub,
		})
		return nil
	}
	if len(dj.VerificationMethod) > maxVerificationMethods {
		return bad("too many verification methods")
	}
	for _, vm := range dj.VerificationMethod {
		if err := addMethod(vm); err != nil {
			return bad(err.Error())
		}
	}
	rel := func(entries []json.RawMessage) ([]string, error) {
		if len(entries) > maxVerificationMethods {
			return nil, errors.New("too many relationship entries")
		}
		var out []string
		for _, e := range entries {
			var ref string
			if json.Unmarshal(e, &ref) == nil {
				out = append(out, abs(ref))
				continue
			}
			var vm vmJSON
			if err := json.Unmarshal(e, &vm); err != nil {
				return nil, errors.New("relationship entry is neither a reference nor a method")
			}
			if err := addMethod(vm); err != nil {
				return nil, err
			}
			out = append(out, abs(vm.ID))
		}
		return out, nil
	}
	var err error
	if doc.Authentication, err = rel(dj.Authentication); err != nil {
		return bad(err.Error())
	}
	if doc.AssertionMethod, err = rel(dj.AssertionMethod); err != nil {
		return bad(err.Error())
	}
	return doc, nil
}

// vmKey extracts an Ed25519 key from a verification method. ok is false
// for methods of other key types.
func vmKey(vm vmJSON) (pub ed25519.PublicKey, ok bool, err error) {
	switch {
	case vm.PublicKeyJwk != nil:
		j := vm.PublicKeyJwk
		if j.D != "" {
			return nil, false, errors.New("verification method holds a private key")
		}
		if j.Kty != "OKP" || j.Crv != "Ed25519" {
			return nil, false, nil
		}
		b, err := contracts.DecodeBase64URL(j.X)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, false, errors.New("bad Ed25519 JWK x")
		}
		return b, true, nil
	case vm.PublicKeyMultibase != "":
		rest, found := strings.CutPrefix(vm.PublicKeyMultibase, "z")
		if !found || len(rest) > maxDIDLength {
			return nil, false, nil
		}
		b, good := decodeBase58(rest)
		if !good || len(b) < 2 || b[0] != multicodecEd25519Pub[0] || b[1] != multicodecEd25519Pub[1] {
			return nil, false, nil
		}
		if len(b) != 2+ed25519.PublicKeySize {
			return nil, false, errors.New("bad Ed25519 multibase key length")
		}
		return b[2:], true, nil
	case vm.Type == "Ed25519VerificationKey2018" && vm.PublicKeyBase58 != "":
		if len(vm.PublicKeyBase58) > maxDIDLength {
			return nil, false, errors.New("bad publicKeyBase58")
		}
		b, good := decodeBase58(vm.PublicKeyBase58)
		if !good || len(b) != ed25519.PublicKeySize {
			return nil, false, errors.New("bad publicKeyBase58")
		}
		return b, true, nil
	}
	return nil, false, nil
}
