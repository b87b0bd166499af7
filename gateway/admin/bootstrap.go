package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"strings"

	"github.com/talosgo/talos/contracts"
)

// BootstrapPrefix starts every bootstrap credential made by [Bootstrap].
const BootstrapPrefix = "talos_admin_"

// bootstrapSize is the random part of a bootstrap credential, in bytes.
const bootstrapSize = 32

// ErrBootstrapCorrupt is returned by [Bootstrap] when the stored hash is not
// a SHA-256.
var ErrBootstrapCorrupt = errors.New("admin: bootstrap credential hash is corrupt")

// BootstrapStore keeps the bootstrap credential's hash: Get answers an
// error matching contracts.ErrNotFound for an id never created, and Create
// stores a value only if the id is new, reporting whether it did (a
// *secrets.Vault of gateway/secrets, sealed and shared by replicas).
type BootstrapStore interface {
	Get(ctx context.Context, id string) ([]byte, error)
	Create(ctx context.Context, id string, value []byte) (bool, error)
}

// Bootstrap makes a gateway's first admin credential: a random bearer
// credential (BootstrapPrefix and 32 random bytes in base64url) of which
// only the SHA-256 is stored, under id in store. It returns the credential
// only when this call created it (print it once: it is never shown again),
// and the stored hash every time; check presented credentials against the
// hash with [CheckBootstrap] (the [Config].Authenticate of the admin
// routes). When replicas start together, one credential wins and the
// others return "" and its hash. A store failure is returned as is.
func Bootstrap(ctx context.Context, store BootstrapStore, id string) (credential string, hash [32]byte, err error) {
	stored, err := store.Get(ctx, id)
	if err == nil {
		if len(stored) != len(hash) {
			return "", hash, ErrBootstrapCorrupt
		}
		copy(hash[:], stored)
		return "", hash, nil
	}
	if !errors.Is(err, contracts.ErrNotFound) {
		return "", hash, err
	}
	raw := make([]byte, bootstrapSize)
	if _, err := rand.Read(raw); err != nil {
		return "", hash, err
	}
	cred := BootstrapPrefix + contracts.EncodeBase64URL(raw)
	clear(raw)
	h := sha256.Sum256([]byte(cred))
	created, err := store.Create(ctx, id, h[:])
	if err != nil {
		return "", hash, err
	}
	if !created {
		// Another replica bootstrapped at the same time: it prints its own.
		return Bootstrap(ctx, store, id)
	}
	return cred, h, nil
}

// CheckBootstrap reports whether presented is the credential whose SHA-256
// is hash, comparing in constant time. Anything without BootstrapPrefix is
// refused.
func CheckBootstrap(presented string, hash [32]byte) bool {
	if !strings.HasPrefix(presented, BootstrapPrefix) {
		return false
	}
	h := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(h[:], hash[:]) == 1
}
