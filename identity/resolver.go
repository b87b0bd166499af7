package identity

import (
	"context"
	"crypto/ed25519"
	"slices"
	"strings"

	"github.com/talosgo/talos/contracts"
)

// A Resolver returns the DID document of a DID. Implementations must be
// safe for concurrent use. Errors are *contracts.Error: TALOS_INVALID_INPUT
// for a malformed or unsupported DID, NOT_FOUND when the DID does not
// exist, TALOS_TRANSPORT_ERROR or TALOS_TRANSPORT_TIMEOUT when the source
// could not be reached.
type Resolver interface {
	Resolve(ctx context.Context, did string) (*Document, error)
}

// ResolverFunc adapts a function to a Resolver.
type ResolverFunc func(ctx context.Context, did string) (*Document, error)

// Resolve calls f.
func (f ResolverFunc) Resolve(ctx context.Context, did string) (*Document, error) { return f(ctx, did) }

// A Document is the part of a DID document this package uses: the
// Ed25519 verification methods and the verification relationships that
// reference them. Methods of other key types are not kept.
type Document struct {
	// ID is the DID the document describes.
	ID string
	// VerificationMethods are the document's Ed25519 keys.
	VerificationMethods []VerificationMethod
	// Authentication and AssertionMethod hold absolute verification method
	// ids (DID URLs).
	Authentication  []string
	AssertionMethod []string
}

// A VerificationMethod is one Ed25519 key of a DID document.
type VerificationMethod struct {
	ID         string // absolute DID URL, e.g. did:web:example.com#key-1
	Type       string // e.g. Ed25519VerificationKey2020, Multikey, JsonWebKey2020
	Controller string
	PublicKey  ed25519.PublicKey
}

// Method returns the verification method with the absolute id.
func (d *Document) Method(id string) (VerificationMethod, bool) {
	for _, m := range d.VerificationMethods {
		if m.ID == id {
			return m, true
		}
	}
	return VerificationMethod{}, false
}

// AuthenticationKey returns the key of the first authentication method
// that is an Ed25519 verification method of the document. It is an error
// with code NOT_FOUND when there is none.
func (d *Document) AuthenticationKey() (ed25519.PublicKey, error) {
	for _, id := range d.Authentication {
		if m, ok := d.Method(id); ok {
			return slices.Clone(m.PublicKey), nil
		}
	}
	return nil, contracts.New(contracts.CodeNotFound, "identity: DID document has no Ed25519 authentication key")
}

func (d *Document) clone() *Document {
	c := &Document{
		ID:                  d.ID,
		VerificationMethods: make([]VerificationMethod, len(d.VerificationMethods)),
		Authentication:      slices.Clone(d.Authentication),
		AssertionMethod:     slices.Clone(d.AssertionMethod),
	}
	for i, m := range d.VerificationMethods {
		m.PublicKey = slices.Clone(m.PublicKey)
		c.VerificationMethods[i] = m
	}
	return c
}

// DIDKeyResolver resolves did:key DIDs of Ed25519 keys locally, with no
// I/O. The document has one verification method, "<did>#<multibase key>",
// of type Ed25519VerificationKey2020, used for authentication and
// assertion. The zero value is ready to use.
type DIDKeyResolver struct{}

var _ Resolver = DIDKeyResolver{}

// Resolve implements Resolver. Errors are those of ParseDID.
func (DIDKeyResolver) Resolve(_ context.Context, did string) (*Document, error) {
	d, err := ParseDID(did)
	if err != nil {
		return nil, err
	}
	return didKeyDocument(d), nil
}

// Document returns the DID document of d, as DIDKeyResolver does. It
// returns nil for the zero DID.
func (d DID) Document() *Document {
	if d.IsZero() {
		return nil
	}
	return didKeyDocument(d)
}

func didKeyDocument(d DID) *Document {
	s := d.String()
	id := s + "#" + s[len("did:key:"):]
	return &Document{
		ID: s,
		VerificationMethods: []VerificationMethod{{
			ID: id, Type: "Ed25519VerificationKey2020", Controller: s, PublicKey: d.PublicKey(),
		}},
		Authentication:  []string{id},
		AssertionMethod: []string{id},
	}
}

// A MultiResolver dispatches to a Resolver per DID method. It is safe for
// concurrent use if its resolvers are.
type MultiResolver struct {
	methods map[string]Resolver
}

var _ Resolver = (*MultiResolver)(nil)

// NewMultiResolver returns a resolver for the methods in the map, keyed by
// method name ("key", "web"). The map is copied. If it has no "key" entry,
// DIDKeyResolver is used for did:key.
func NewMultiResolver(methods map[string]Resolver) *MultiResolver {
	m := make(map[string]Resolver, len(methods)+1)
	for k, v := range methods {
		if v != nil {
			m[k] = v
		}
	}
	if _, ok := m["key"]; !ok {
		m["key"] = DIDKeyResolver{}
	}
	return &MultiResolver{methods: m}
}

// Resolve implements Resolver. A DID whose method has no resolver is an
// error with code TALOS_INVALID_INPUT.
func (r *MultiResolver) Resolve(ctx context.Context, did string) (*Document, error) {
	rest, ok := strings.CutPrefix(did, "did:")
	method, _, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || method == "" {
		return nil, contracts.New(contracts.CodeInvalidInput, "identity: not a DID")
	}
	res, ok := r.methods[method]
	if !ok {
		return nil, contracts.New(contracts.CodeInvalidInput, "identity: unsupported DID method")
	}
	return res.Resolve(ctx, did)
}

// A KeyResolver maps a key id (as sent in X-Talos-Key-ID, or a legacy key
// id) to an Ed25519 public key. An unknown key id must be an error; callers
// treat every error as "not authenticated". Implementations must be safe for
// concurrent use.
type KeyResolver interface {
	ResolveKey(ctx context.Context, keyID string) (ed25519.PublicKey, error)
}

// KeyResolverFunc adapts a function to a KeyResolver.
type KeyResolverFunc func(ctx context.Context, keyID string) (ed25519.PublicKey, error)

// ResolveKey calls f.
func (f KeyResolverFunc) ResolveKey(ctx context.Context, keyID string) (ed25519.PublicKey, error) {
	return f(ctx, keyID)
}

// StaticKeys is a fixed KeyResolver. Keys must not be modified after use
// begins. Unknown ids are an error with code NOT_FOUND.
type StaticKeys map[string]ed25519.PublicKey

var _ KeyResolver = StaticKeys(nil)

// ResolveKey implements KeyResolver.
func (s StaticKeys) ResolveKey(_ context.Context, keyID string) (ed25519.PublicKey, error) {
	k, ok := s[keyID]
	if !ok || len(k) != ed25519.PublicKeySize {
		return nil, contracts.New(contracts.CodeNotFound, "identity: unknown key id")
	}
	return slices.Clone(k), nil
}

// DIDKeys returns a KeyResolver whose key ids are DIDs or DID URLs. A
// bare DID resolves to the document's first Ed25519 authentication key; a
// DID URL "did#fragment" resolves to that verification method, which must
// also be listed under authentication. A nil r means DIDKeyResolver
// (did:key only, no I/O).
func DIDKeys(r Resolver) KeyResolver {
	if r == nil {
		r = DIDKeyResolver{}
	}
	return KeyResolverFunc(func(ctx context.Context, keyID string) (ed25519.PublicKey, error) {
		did, frag, hasFrag := strings.Cut(keyID, "#")
		doc, err := r.Resolve(ctx, did)
		if err != nil {
			return nil, err
		}
		if doc.ID != did {
			return nil, contracts.New(contracts.CodeInvalidInput, "identity: DID document id does not match the DID")
		}
		if !hasFrag {
			return doc.AuthenticationKey()
		}
		id := did + "#" + frag
		if !slices.Contains(doc.Authentication, id) {
			return nil, contracts.New(contracts.CodeNotFound, "identity: key is not an authentication method of the DID")
		}
		m, ok := doc.Method(id)
		if !ok {
			return nil, contracts.New(contracts.CodeNotFound, "identity: no Ed25519 verification method with that id")
		}
		return slices.Clone(m.PublicKey), nil
	})
}
