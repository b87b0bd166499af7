package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// Secret ids: KEK records live under kekPrefix, everything else is a server
// secret sealed under the KEKs.
const (
	kekPrefix      = "kek/"
	masterKEKID    = "master"
	kekAADPrefix   = "talos.kek.v1:"
	secretAADPfx   = "talos.secret.v1:" // the contract convention for secrets/envelope.v1
	kekIDPrefix    = "kek-"
	maxUpdateTries = 16
	// keepKEKs is how many of the newest KEKs are always kept. Older ones
	// are retired after a complete rotation when no stored envelope names
	// them, which keeps the keyring far below its limit.
	keepKEKs = 4
)

// Secrets holds the server's secrets sealed at rest with identity.Keyring
// envelopes (contract secrets/envelope.v1, AES-256-GCM).
//
// Two levels of keys: the master key (TALOS_MASTER_KEY, or the master key
// file) seals the key-encryption keys (KEKs), stored as records "kek/<id>";
// the newest KEK seals the server secrets, each with associated data
// "talos.secret.v1:<id>". Rotate adds a KEK and rewraps every secret under
// it. Older KEKs stay loaded, so an envelope read just before a rewrap still
// opens: no read fails during a rotation. A replica that meets an envelope
// under a KEK it has not loaded yet reloads the KEK records first.
//
// Secrets is safe for concurrent use.
type Secrets struct {
	store  secretStore
	master *identity.Keyring
	ring   *identity.Keyring
	log    *slog.Logger

	// onReveal, when set, sees every plaintext Get returns (the server
	// registers it with the trace redactor, so a secret that a handler
	// records on a span never leaves the process).
	onReveal func([]byte)

	loadMu sync.Mutex // serializes KEK reloads
	maxSeq int        // guarded by loadMu: highest KEK sequence loaded
}

// openSecrets loads the KEKs from store, creating the first one when the
// store has none.
func openSecrets(ctx context.Context, store secretStore, masterKey []byte, log *slog.Logger) (*Secrets, error) {
	if len(masterKey) != identity.KEKSize {
		return nil, errors.New("secrets: master key must be 32 bytes")
	}
	master := identity.NewKeyring()
	if err := master.Add(masterKEKID, masterKey); err != nil {
		return nil, err
	}
	if err := master.SetPrimary(masterKEKID); err != nil {
		return nil, err
	}
	s := &Secrets{store: store, master: master, ring: identity.NewKeyring(), log: log}
	if err := s.reloadKEKs(ctx); err != nil {
		return nil, err
	}
	if s.ring.Primary() == "" {
		if _, err := s.addKEK(ctx); err != nil && !errors.Is(err, errSecretExists) {
			return nil, err
		}
		if err := s.reloadKEKs(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// reloadKEKs loads every KEK record not loaded yet and makes the newest the
// primary.
func (s *Secrets) reloadKEKs(ctx context.Context) error {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	recs, err := s.store.list(ctx, kekPrefix)
	if err != nil {
		return fmt.Errorf("secrets: listing KEKs: %w", err)
	}
	known := map[string]bool{}
	for _, id := range s.ring.IDs() {
		known[id] = true
	}
	stored := map[string]bool{}
	bestID, bestSeq := "", 0
	for _, r := range recs {
		id := strings.TrimPrefix(r.ID, kekPrefix)
		seq, ok := kekSeq(id)
		if !ok {
			return fmt.Errorf("secrets: malformed KEK record %q", r.ID)
		}
		if !known[id] {
			kek, err := s.master.Open(r.Envelope, []byte(kekAADPrefix+id))
			if err != nil {
				if errors.Is(err, identity.ErrEnvelopeOpen) {
					return errors.New("secrets: the master key does not open the stored KEKs (every replica needs the same TALOS_MASTER_KEY)")
				}
				return fmt.Errorf("secrets: opening KEK %s: %w", id, err)
			}
			err = s.ring.Add(id, kek)
			clear(kek)
			if err != nil {
				return fmt.Errorf("secrets: loading KEK %s: %w", id, err)
			}
		}
		stored[id] = true
		if seq > bestSeq {
			bestID, bestSeq = id, seq
		}
	}
	if bestID != "" && bestSeq >= s.maxSeq {
		if s.ring.Primary() != bestID {
			if err := s.ring.SetPrimary(bestID); err != nil {
				return err
			}
		}
		s.maxSeq = bestSeq
	}
	// Forget KEKs that were retired from the store, keeping the newest
	// ones in any case.
	for id := range known {
		if seq, ok := kekSeq(id); ok && !stored[id] && seq <= s.maxSeq-keepKEKs && id != s.ring.Primary() {
			s.ring.Remove(id)
		}
	}
	return nil
}

func kekSeq(id string) (int, bool) {
	n, ok := strings.CutPrefix(id, kekIDPrefix)
	if !ok {
		return 0, false
	}
	seq, err := strconv.Atoi(n)
	return seq, err == nil && seq > 0
}

// addKEK generates the next KEK, stores it sealed under the master key and
// returns its id. It does not load it: reloadKEKs does.
func (s *Secrets) addKEK(ctx context.Context) (string, error) {
	s.loadMu.Lock()
	seq := s.maxSeq + 1
	s.loadMu.Unlock()
	id := fmt.Sprintf("%s%08d", kekIDPrefix, seq)
	kek := make([]byte, identity.KEKSize)
	defer clear(kek)
	if _, err := rand.Read(kek); err != nil {
		return "", err
	}
	env, err := s.master.Seal(kek, []byte(kekAADPrefix+id))
	if err != nil {
		return "", err
	}
	if err := s.store.create(ctx, kekPrefix+id, env); err != nil {
		return "", err
	}
	return id, nil
}

// Get returns the plaintext of secret id, or an error with code NOT_FOUND
// when it does not exist. The caller should clear the result after use.
func (s *Secrets) Get(ctx context.Context, id string) ([]byte, error) {
	if err := checkSecretID(id); err != nil {
		return nil, err
	}
	r, err := s.store.get(ctx, id)
	if errors.Is(err, errSecretNotFound) {
		return nil, contracts.Errorf(contracts.CodeNotFound, "secrets: no secret "+strconv.Quote(id))
	}
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInternal, "secrets: store unavailable", err).WithRetryable(true)
	}
	pt, err := s.ring.Open(r.Envelope, []byte(secretAADPfx+id))
	if errors.Is(err, contracts.ErrNotFound) {
		// Sealed under a KEK another replica added: load it and retry.
		if rerr := s.reloadKEKs(ctx); rerr != nil {
			return nil, contracts.Wrap(contracts.CodeInternal, "secrets: reloading KEKs", rerr)
		}
		pt, err = s.ring.Open(r.Envelope, []byte(secretAADPfx+id))
	}
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInternal, "secrets: cannot open secret "+strconv.Quote(id), err)
	}
	if s.onReveal != nil {
		s.onReveal(pt)
	}
	return pt, nil
}

// Create stores a new secret. It returns false (and stores nothing) when id
// already exists: the first of several replicas starting at once wins.
func (s *Secrets) Create(ctx context.Context, id string, value []byte) (bool, error) {
	if err := checkSecretValue(id, value); err != nil {
		return false, err
	}
	env, err := s.ring.Seal(value, []byte(secretAADPfx+id))
	if err != nil {
		return false, err
	}
	switch err := s.store.create(ctx, id, env); {
	case errors.Is(err, errSecretExists):
		return false, nil
	case err != nil:
		return false, contracts.Wrap(contracts.CodeInternal, "secrets: store unavailable", err).WithRetryable(true)
	}
	return true, nil
}

// Put stores value as secret id, replacing any previous value.
func (s *Secrets) Put(ctx context.Context, id string, value []byte) error {
	if err := checkSecretValue(id, value); err != nil {
		return err
	}
	env, err := s.ring.Seal(value, []byte(secretAADPfx+id))
	if err != nil {
		return err
	}
	for range maxUpdateTries {
		r, err := s.store.get(ctx, id)
		switch {
		case errors.Is(err, errSecretNotFound):
			err = s.store.create(ctx, id, env)
			if errors.Is(err, errSecretExists) {
				continue
			}
		case err == nil:
			err = s.store.update(ctx, id, env, r.Version)
			if errors.Is(err, errSecretConflict) {
				continue
			}
		}
		if err != nil {
			return contracts.Wrap(contracts.CodeInternal, "secrets: store unavailable", err).WithRetryable(true)
		}
		return nil
	}
	return contracts.Errorf(contracts.CodeInternal, "secrets: too many concurrent updates").WithRetryable(true)
}

// RotationResult reports one rotation.
type RotationResult struct {
	Skipped   bool   // another holder had the rotation lock
	KEKID     string // the new primary KEK
	Rewrapped int    // secrets moved to it
}

// Rotate adds a KEK and rewraps every secret under it, holding the rotation
// lock (a PostgreSQL advisory lock when the store is PostgreSQL, a
// process-local lock otherwise). When another holder has the lock it only
// reloads the KEKs and reports Skipped. Readers are never blocked.
func (s *Secrets) Rotate(ctx context.Context) (RotationResult, error) {
	unlock, ok, err := s.store.tryLock(ctx)
	if err != nil {
		return RotationResult{}, fmt.Errorf("secrets: rotation lock: %w", err)
	}
	if !ok {
		return RotationResult{Skipped: true}, s.reloadKEKs(ctx)
	}
	defer unlock()
	// Another replica may have rotated since our last load.
	if err := s.reloadKEKs(ctx); err != nil {
		return RotationResult{}, err
	}
	id, err := s.addKEK(ctx)
	if err != nil {
		return RotationResult{}, fmt.Errorf("secrets: adding a KEK: %w", err)
	}
	if err := s.reloadKEKs(ctx); err != nil {
		return RotationResult{}, err
	}
	res := RotationResult{KEKID: id}
	all, err := s.store.list(ctx, "")
	if err != nil {
		return res, fmt.Errorf("secrets: listing secrets: %w", err)
	}
	for _, r := range all {
		if strings.HasPrefix(r.ID, kekPrefix) {
			continue
		}
		if err := s.rewrap(ctx, r); err != nil {
			return res, err
		}
		res.Rewrapped++
	}
	if err := s.retireKEKs(ctx); err != nil {
		return res, err
	}
	return res, nil
}

// retireKEKs deletes the KEK records older than the keepKEKs newest that no
// stored envelope names. It runs under the rotation lock, after a complete
// rewrap.
func (s *Secrets) retireKEKs(ctx context.Context) error {
	all, err := s.store.list(ctx, "")
	if err != nil {
		return fmt.Errorf("secrets: listing secrets: %w", err)
	}
	inUse := map[string]bool{}
	var keks []string
	for _, r := range all {
		if id, ok := strings.CutPrefix(r.ID, kekPrefix); ok {
			keks = append(keks, id)
			continue
		}
		if id := envelopeKEK(r.Envelope); id != "" {
			inUse[id] = true
		}
	}
	s.loadMu.Lock()
	maxSeq := s.maxSeq
	s.loadMu.Unlock()
	for _, id := range keks {
		if seq, ok := kekSeq(id); ok && seq <= maxSeq-keepKEKs && !inUse[id] {
			if err := s.store.remove(ctx, kekPrefix+id); err != nil {
				return fmt.Errorf("secrets: retiring KEK %s: %w", id, err)
			}
		}
	}
	return nil
}

// envelopeKEK returns the kek_id an envelope names, or "".
func envelopeKEK(env []byte) string {
	var e struct {
		KEKID string `json:"kek_id"`
	}
	if json.Unmarshal(env, &e) != nil {
		return ""
	}
	return e.KEKID
}

// rewrap moves one record to the primary KEK, re-reading it when a writer
// changed it meanwhile.
func (s *Secrets) rewrap(ctx context.Context, r secretRecord) error {
	aad := []byte(secretAADPfx + r.ID)
	for range maxUpdateTries {
		env, err := s.ring.Rewrap(r.Envelope, aad)
		if err != nil {
			return fmt.Errorf("secrets: rewrapping %q: %w", r.ID, err)
		}
		err = s.store.update(ctx, r.ID, env, r.Version)
		if !errors.Is(err, errSecretConflict) {
			if err != nil {
				return fmt.Errorf("secrets: storing %q: %w", r.ID, err)
			}
			return nil
		}
		if r, err = s.store.get(ctx, r.ID); err != nil {
			return fmt.Errorf("secrets: re-reading %q: %w", r.ID, err)
		}
	}
	return fmt.Errorf("secrets: %q changed %d times during its rewrap", r.ID, maxUpdateTries)
}

// rotationWorker rotates every interval until ctx ends.
func (s *Secrets) rotationWorker(interval time.Duration) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				res, err := s.Rotate(ctx)
				switch {
				case err != nil && ctx.Err() != nil:
					return nil
				case err != nil:
					s.log.Error("KEK rotation failed", "err", err)
				case res.Skipped:
					s.log.Info("KEK rotation skipped: another replica holds the lock")
				default:
					s.log.Info("KEK rotated", "kek_id", res.KEKID, "rewrapped", res.Rewrapped)
				}
			}
		}
	}
}

func checkSecretID(id string) error {
	if id == "" || len(id) > 200 || strings.HasPrefix(id, kekPrefix) || !isPrintableASCII(id) {
		return contracts.Errorf(contracts.CodeInvalidInput, "secrets: bad secret id")
	}
	return nil
}

func checkSecretValue(id string, v []byte) error {
	if err := checkSecretID(id); err != nil {
		return err
	}
	if len(v) == 0 || len(v) > maxSecretSize {
		return contracts.Errorf(contracts.CodeInvalidInput, "secrets: secret must be 1 to 65536 bytes")
	}
	return nil
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '!' || s[i] > '~' {
			return false
		}
	}
	return true
}
