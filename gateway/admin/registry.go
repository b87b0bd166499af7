package admin

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// A Principal is a registered agent: its did:key is the key id that may
// sign attested requests, and its team is the group its budgets and
// rate limits share. The JSON form is the admin API's (and the stored
// document's).
type Principal struct {
	ID        string    `json:"principal_id"`
	DID       string    `json:"did"`
	TeamID    string    `json:"team_id"`
	CreatedAt time.Time `json:"created_at"`
	pub       ed25519.PublicKey
}

// PublicKey returns the principal's Ed25519 key (from its did:key).
func (p *Principal) PublicKey() ed25519.PublicKey { return p.pub }

// NewPrincipal returns the registration of did in team, created now.
func NewPrincipal(did identity.DID, team string, now time.Time) *Principal {
	return &Principal{ID: did.String(), DID: did.String(), TeamID: team, CreatedAt: now.UTC(), pub: did.PublicKey()}
}

// parsePrincipal reads a stored registration.
func parsePrincipal(raw []byte) (*Principal, error) {
	var p Principal
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	did, err := identity.ParseDID(p.DID)
	if err != nil {
		return nil, err
	}
	p.pub = did.PublicKey()
	return &p, nil
}

// PrincipalCacheTTL bounds how long a Registry trusts its cached view of
// a registration held in a [SharedStore]: a key registered or deleted on
// one replica takes effect on the others within this time.
const PrincipalCacheTTL = 30 * time.Second

// maxKeyIDLen bounds the key ids looked up in the store.
const maxKeyIDLen = 128

// Registry maps attestation key ids to registered principals; it is the
// identity.KeyResolver of the gateway's talos.Attester. Only registered
// keys can sign requests: an unknown key id is not authenticated, and a
// store that does not answer denies (the error is retryable INTERNAL).
// A principal's key id is its did:key. Registrations are cached; from a
// SharedStore a cached one is re-read after PrincipalCacheTTL.
type Registry struct {
	m      sync.Map // key id → cachedPrincipal
	store  Store
	shared bool
	now    func() time.Time
}

type cachedPrincipal struct {
	p      *Principal
	loaded time.Time
}

func newRegistry(store Store, now func() time.Time) *Registry {
	ss, ok := store.(SharedStore)
	return &Registry{store: store, shared: ok && ss.Shared(), now: now}
}

var _ identity.KeyResolver = (*Registry)(nil)

// ResolveKey implements identity.KeyResolver.
func (r *Registry) ResolveKey(ctx context.Context, keyID string) (ed25519.PublicKey, error) {
	p, err := r.Lookup(ctx, keyID)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, contracts.New(contracts.CodeAuthInvalid, "unknown key id")
	}
	return p.pub, nil
}

// Lookup returns the principal of keyID (a did:key), or nil when it is not
// registered. An error means the store did not answer or holds a bad
// record.
func (r *Registry) Lookup(ctx context.Context, keyID string) (*Principal, error) {
	if v, ok := r.m.Load(keyID); ok {
		c := v.(cachedPrincipal)
		if !r.shared || r.now().Sub(c.loaded) < PrincipalCacheTTL {
			return c.p, nil
		}
	}
	if !strings.HasPrefix(keyID, "did:key:z") || len(keyID) > maxKeyIDLen {
		return nil, nil
	}
	raw, ok, err := r.store.Get(ctx, KindPrincipal, keyID)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInternal, "principal registry unavailable", err).WithRetryable(true)
	}
	if !ok {
		r.m.Delete(keyID)
		return nil, nil
	}
	p, err := parsePrincipal(raw)
	if err != nil || p.DID != keyID {
		return nil, contracts.New(contracts.CodeInternal, "principal registry holds a bad record")
	}
	r.cache(p)
	return p, nil
}

// Cache puts p in the registry's cache without storing it: for tests and
// for principals a gateway registers from its own configuration.
func (r *Registry) Cache(p *Principal) {
	if p.pub == nil {
		if did, err := identity.ParseDID(p.DID); err == nil {
			p.pub = did.PublicKey()
		}
	}
	r.cache(p)
}

func (r *Registry) cache(p *Principal) {
	r.m.Store(p.DID, cachedPrincipal{p: p, loaded: r.now()})
}

func (r *Registry) forget(keyID string) { r.m.Delete(keyID) }

// FromContext returns the registered principal of an attested request (ctx
// is its context, or one derived from it): the registration of the key id
// whose key verified its attestation, as the Registry resolved it.
func (r *Registry) FromContext(ctx context.Context) (*Principal, bool) {
	att, ok := talos.AttestationFrom(ctx)
	if !ok {
		return nil, false
	}
	v, ok := r.m.Load(att.KeyID)
	if !ok {
		return nil, false
	}
	p := v.(cachedPrincipal).p
	if !p.pub.Equal(att.PublicKey) {
		return nil, false
	}
	return p, true
}

// Registered adapts a handler of an attested route (served behind a
// talos.Attester resolving keys with r) to the registration of its
// principal, answering AUTH_INVALID when there is none (a registration
// deleted since the key was resolved).
func (r *Registry) Registered(h func(http.ResponseWriter, *http.Request, *Principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p, ok := r.FromContext(req.Context())
		if !ok {
			talos.WriteError(w, req, contracts.New(contracts.CodeAuthInvalid, "unknown principal"))
			return
		}
		h(w, req, p)
	})
}

// replace makes ps the registry's cached registrations, dropping the rest.
func (r *Registry) replace(ps []*Principal) {
	keep := make(map[string]bool, len(ps))
	for _, p := range ps {
		keep[p.DID] = true
		r.cache(p)
	}
	r.m.Range(func(k, _ any) bool {
		if !keep[k.(string)] {
			r.m.Delete(k)
		}
		return true
	})
}
