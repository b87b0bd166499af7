package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/talosgo/talos/contracts"
)

// keyCache holds the issuer's signing keys by kid. Fetches are serialized
// (one in flight) and spaced by MinRefreshInterval; a JWKS older than
// CacheTTL is not used.
type keyCache struct {
	v *Verifier

	fetch sync.Mutex // held while fetching

	mu      sync.Mutex
	keys    map[string]jose.JSONWebKey
	fetched time.Time // last successful fetch
	tried   time.Time // last fetch attempt
	lastErr error     // error of the last attempt, nil after a success
	jwksURL string    // discovered or configured
}

// unavailable is the error of keys that cannot be obtained: the request
// is refused (fail closed), and may be retried.
func unavailable(msg string, cause error) error {
	return contracts.Wrap(contracts.CodeInternal, "oauth: "+msg, cause).WithRetryable(true)
}

// lookup returns the key kid, fetching the JWKS when the cache is empty
// or stale, or when kid is unknown and the last fetch is older than
// MinRefreshInterval.
func (c *keyCache) lookup(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	if k, ok, err := c.cached(kid); ok || err != nil {
		return k, err
	}
	c.fetch.Lock()
	defer c.fetch.Unlock()
	// Another request may have fetched while this one waited.
	if k, ok, err := c.cached(kid); ok || err != nil {
		return k, err
	}
	c.mu.Lock()
	now := c.v.cfg.Now()
	fresh := c.keys != nil && now.Sub(c.fetched) < c.v.cfg.CacheTTL
	recent := !c.tried.IsZero() && now.Sub(c.tried) < c.v.cfg.MinRefreshInterval
	lastErr := c.lastErr
	c.mu.Unlock()
	if recent {
		if !fresh {
			return jose.JSONWebKey{}, unavailable("the issuer's keys are unavailable", lastErr)
		}
		return jose.JSONWebKey{}, invalid("is signed with an unknown key (kid)")
	}
	keys, jwksURL, err := c.load(ctx)
	c.mu.Lock()
	c.tried = now
	c.lastErr = err
	if err == nil {
		c.keys, c.fetched, c.jwksURL = keys, now, jwksURL
	}
	c.mu.Unlock()
	if err != nil {
		return jose.JSONWebKey{}, unavailable("fetching the issuer's keys failed", err)
	}
	if k, ok := keys[kid]; ok {
		return k, nil
	}
	return jose.JSONWebKey{}, invalid("is signed with an unknown key (kid)")
}

// cached answers from a fresh cache: the key and true, or (false, nil)
// when a fetch may help.
func (c *keyCache) cached(kid string) (jose.JSONWebKey, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.v.cfg.Now()
	if c.keys == nil || now.Sub(c.fetched) >= c.v.cfg.CacheTTL {
		return jose.JSONWebKey{}, false, nil
	}
	if k, ok := c.keys[kid]; ok {
		return k, true, nil
	}
	return jose.JSONWebKey{}, false, nil
}

// load discovers the JWKS URL (once) and fetches the keys.
func (c *keyCache) load(ctx context.Context) (map[string]jose.JSONWebKey, string, error) {
	c.mu.Lock()
	jwksURL := c.jwksURL
	c.mu.Unlock()
	if jwksURL == "" {
		jwksURL = c.v.cfg.JWKSURL
	}
	if jwksURL == "" {
		u, err := c.discover(ctx)
		if err != nil {
			return nil, "", err
		}
		jwksURL = u
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	found, err := c.get(ctx, jwksURL, &doc)
	if err != nil {
		return nil, "", err
	}
	if !found {
		return nil, "", errors.New("oauth: JWKS not found")
	}
	keys := map[string]jose.JSONWebKey{}
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		// A key of a kind this package does not know (another kty, an
		// encryption key) is skipped, not fatal to the whole set.
		if json.Unmarshal(raw, &k) != nil || k.KeyID == "" || !k.IsPublic() || !k.Valid() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if _, dup := keys[k.KeyID]; dup {
			// Two keys under one kid: neither is trusted.
			keys[k.KeyID] = jose.JSONWebKey{}
			continue
		}
		if len(keys) == MaxKeys {
			break
		}
		keys[k.KeyID] = k
	}
	for kid, k := range keys {
		if k.Key == nil {
			delete(keys, kid)
		}
	}
	return keys, jwksURL, nil
}

// discover reads the issuer's metadata (RFC 8414, then OpenID Connect
// discovery, path-inserted or path-appended as the MCP specification
// lists them) and returns its jwks_uri. The metadata's issuer must equal
// the configured one.
func (c *keyCache) discover(ctx context.Context) (string, error) {
	for _, mu := range metadataURLs(c.v.cfg.Issuer) {
		var meta struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		found, err := c.get(ctx, mu, &meta)
		if err != nil {
			return "", err
		}
		if !found {
			continue
		}
		if meta.Issuer != c.v.cfg.Issuer {
			return "", errors.New("oauth: the issuer's metadata names another issuer")
		}
		if err := checkURL(meta.JWKSURI); err != nil {
			return "", errors.New("oauth: the issuer's metadata has no usable jwks_uri")
		}
		return meta.JWKSURI, nil
	}
	return "", errors.New("oauth: no authorization server metadata found for the issuer")
}

// metadataURLs lists the metadata locations of issuer, in the order the
// MCP authorization specification gives.
func metadataURLs(issuer string) []string {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil
	}
	base := u.Scheme + "://" + u.Host
	path := strings.Trim(u.EscapedPath(), "/")
	if path == "" {
		return []string{base + "/.well-known/oauth-authorization-server", base + "/.well-known/openid-configuration"}
	}
	return []string{
		base + "/.well-known/oauth-authorization-server/" + path,
		base + "/.well-known/openid-configuration/" + path,
		base + "/" + path + "/.well-known/openid-configuration",
	}
}

// get fetches a JSON document of at most MaxDocumentSize bytes into dst;
// false (and no error) on a 404 or 410.
func (c *keyCache) get(ctx context.Context, u string, dst any) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "application/json")
	res, err := c.v.cfg.HTTPClient.Do(req)
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusGone:
		return false, nil
	case res.StatusCode != http.StatusOK:
		return false, errors.New("oauth: " + u + ": HTTP " + res.Status)
	}
	mt, _, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if err != nil || (mt != "application/json" && mt != "application/jwk-set+json") {
		return false, errors.New("oauth: " + u + ": not JSON")
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, MaxDocumentSize+1))
	if err != nil {
		return false, err
	}
	if len(body) > MaxDocumentSize {
		return false, errors.New("oauth: " + u + ": document too large")
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return false, errors.New("oauth: " + u + ": malformed JSON")
	}
	return true, nil
}
