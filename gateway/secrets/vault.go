package secrets

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

// Record ids and associated data.
const (
	// KEKPrefix starts the ids of KEK records; secret ids may not use it.
	KEKPrefix    = "kek/"
	masterKEKID  = "master"
	kekAADPrefix = "talos.kek.v1:"
	secretAADPfx = "talos.secret.v1:" // the contract convention for secrets/envelope.v1
	kekIDPrefix  = "kek-"
)

// ErrWrongMasterKey is returned by Open (and by a reload) when the master
// key does not open the stored KEKs: every process sharing a store needs the
// same master key.
var ErrWrongMasterKey = errors.New("secrets: the master key does not open the stored KEKs (every process sharing the store needs the same master key)")

// Config configures a [Vault].
type Config struct {
	// Store holds the envelopes. Required.
	Store Store
	// MasterKey seals the KEKs: 32 bytes, required. Open copies it (the
	// caller may clear its slice afterwards). Every process sharing Store
	// needs the same master key.
	MasterKey []byte
	// Logger receives the rotation worker's records (KEK ids and counts,
	// never key material). Nil discards them.
	Logger *slog.Logger
	// OnReveal, when set, sees every plaintext Get returns, before the
	// caller does (register it with a trace or log redactor, so a secret a
	// handler records never leaves the process). It must not retain or
	// modify the slice beyond copying it.
	OnReveal func([]byte)
}

// A Vault holds secrets sealed at rest under rotating KEKs, themselves
// sealed under the master key (see the package documentation). It is safe
// for concurrent use.
type Vault struct {
	store    Store
	master   *identity.Keyring
	ring     *identity.Keyring
	log      *slog.Logger
	onReveal func([]byte)

	loadMu sync.Mutex // serializes KEK reloads
	maxSeq int        // guarded by loadMu: highest KEK sequence loaded
}

// Open loads the KEKs from cfg.Store, creating the first one when the store
// has none (the first of several processes starting at once wins). A master
// key that does not open the stored KEKs is [ErrWrongMasterKey].
func Open(ctx context.Context, cfg Config) (*Vault, error) {
	if cfg.Store == nil {
		return nil, errors.New("secrets: Config.Store is required")
	}
	if len(cfg.MasterKey) != identity.KEKSize {
		return nil, errors.New("secrets: the master key must be 32 bytes")
	}
	master := identity.NewKeyring()
	if err := master.Add(masterKEKID, cfg.MasterKey); err != nil {
		return nil, err
	}
	if err := master.SetPrimary(masterKEKID); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v := &Vault{store: cfg.Store, master: master, ring: identity.NewKeyring(), log: log, onReveal: cfg.OnReveal}
	if err := v.reloadKEKs(ctx); err != nil {
		return nil, err
	}
	if v.ring.Primary() == "" {
		if _, err := v.addKEK(ctx); err != nil && !errors.Is(err, ErrExists) {
			return nil, err
		}
		if err := v.reloadKEKs(ctx); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// PrimaryKEK returns the id of the KEK new envelopes are sealed under.
func (v *Vault) PrimaryKEK() string { return v.ring.Primary() }

// reloadKEKs loads every KEK record not loaded yet and makes the newest the
// primary.
func (v *Vault) reloadKEKs(ctx context.Context) error {
	v.loadMu.Lock()
	defer v.loadMu.Unlock()
	recs, err := v.store.List(ctx, KEKPrefix)
	if err != nil {
		return fmt.Errorf("secrets: listing KEKs: %w", err)
	}
	known := map[string]bool{}
	for _, id := range v.ring.IDs() {
		known[id] = true
	}
	stored := map[string]bool{}
	bestID, bestSeq := "", 0
	for _, r := range recs {
		id := strings.TrimPrefix(r.ID, KEKPrefix)
		seq, ok := kekSeq(id)
		if !ok {
			return fmt.Errorf("secrets: malformed KEK record %q", r.ID)
		}
		if !known[id] {
			kek, err := v.master.Open(r.Envelope, []byte(kekAADPrefix+id))
			if err != nil {
				if errors.Is(err, identity.ErrEnvelopeOpen) {
					return ErrWrongMasterKey
				}
				return fmt.Errorf("secrets: opening KEK %s: %w", id, err)
			}
			err = v.ring.Add(id, kek)
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
	if bestID != "" && bestSeq >= v.maxSeq {
		if v.ring.Primary() != bestID {
			if err := v.ring.SetPrimary(bestID); err != nil {
				return err
			}
		}
		v.maxSeq = bestSeq
	}
	// Forget KEKs that were retired from the store, keeping the newest
	// ones in any case.
	for id := range known {
		if seq, ok := kekSeq(id); ok && !stored[id] && seq <= v.maxSeq-keepKEKs && id != v.ring.Primary() {
			v.ring.Remove(id)
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
func (v *Vault) addKEK(ctx context.Context) (string, error) {
	v.loadMu.Lock()
	seq := v.maxSeq + 1
	v.loadMu.Unlock()
	id := fmt.Sprintf("%s%08d", kekIDPrefix, seq)
	kek := make([]byte, identity.KEKSize)
	defer clear(kek)
	if _, err := rand.Read(kek); err != nil {
		return "", err
	}
	env, err := v.master.Seal(kek, []byte(kekAADPrefix+id))
	if err != nil {
		return "", err
	}
	if err := v.store.Create(ctx, KEKPrefix+id, env); err != nil {
		return "", err
	}
	return id, nil
}

// Get returns the plaintext of secret id; an error with code NOT_FOUND when
// it does not exist, INVALID_INPUT for a bad id, INTERNAL when the store
// fails or the envelope does not open. The caller should clear the result
// after use.
func (v *Vault) Get(ctx context.Context, id string) ([]byte, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	r, err := v.store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, contracts.New(contracts.CodeNotFound, "secrets: no secret "+strconv.Quote(id))
	}
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInternal, "secrets: store unavailable", err).WithRetryable(true)
	}
	pt, err := v.ring.Open(r.Envelope, []byte(secretAADPfx+id))
	if errors.Is(err, contracts.ErrNotFound) {
		// Sealed under a KEK another process added: load it and retry.
		if rerr := v.reloadKEKs(ctx); rerr != nil {
			return nil, contracts.Wrap(contracts.CodeInternal, "secrets: reloading KEKs", rerr)
		}
		pt, err = v.ring.Open(r.Envelope, []byte(secretAADPfx+id))
	}
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInternal, "secrets: cannot open secret "+strconv.Quote(id), err)
	}
	if v.onReveal != nil {
		v.onReveal(pt)
	}
	return pt, nil
}

// Create stores a new secret. It returns false (and stores nothing) when id
// already exists: the first of several processes starting at once wins.
func (v *Vault) Create(ctx context.Context, id string, value []byte) (bool, error) {
	if err := checkValue(id, value); err != nil {
		return false, err
	}
	env, err := v.ring.Seal(value, []byte(secretAADPfx+id))
	if err != nil {
		return false, err
	}
	switch err := v.store.Create(ctx, id, env); {
	case errors.Is(err, ErrExists):
		return false, nil
	case err != nil:
		return false, contracts.Wrap(contracts.CodeInternal, "secrets: store unavailable", err).WithRetryable(true)
	}
	return true, nil
}

// Put stores value as secret id, replacing any previous value.
func (v *Vault) Put(ctx context.Context, id string, value []byte) error {
	if err := checkValue(id, value); err != nil {
		return err
	}
	env, err := v.ring.Seal(value, []byte(secretAADPfx+id))
	if err != nil {
		return err
	}
	for range maxUpdateTries {
		r, err := v.store.Get(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			err = v.store.Create(ctx, id, env)
			if errors.Is(err, ErrExists) {
				continue
			}
		case err == nil:
			err = v.store.Update(ctx, id, env, r.Version)
			if errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
				continue
			}
		}
		if err != nil {
			return contracts.Wrap(contracts.CodeInternal, "secrets: store unavailable", err).WithRetryable(true)
		}
		return nil
	}
	return contracts.New(contracts.CodeInternal, "secrets: too many concurrent updates").WithRetryable(true)
}

// RotationResult reports one rotation.
type RotationResult struct {
	Skipped   bool   // no rotation: another holder had the rotation lock, or NotDue
	KEKID     string // the new primary KEK
	Rewrapped int    // secrets moved to it
	// NotDue is set (with Skipped) when RotateIfDue found the primary KEK
	// younger than the interval; Age is then its age by the store's clock.
	NotDue bool
	Age    time.Duration
}

// Rotate adds a KEK and rewraps every secret under it, holding the store's
// rotation lock. When another holder has the lock it only reloads the KEKs
// and reports Skipped. Readers are never blocked. It rotates whenever it is
// called (the operator's rotation); the scheduled one is [Vault.RotateIfDue].
func (v *Vault) Rotate(ctx context.Context) (RotationResult, error) {
	return v.rotate(ctx, 0)
}

// RotateIfDue rotates as [Vault.Rotate] does, but only when the primary
// KEK recorded in the store is at least interval old by the store's clock
// ([Store.Age]). The check and the rotation both run under the store's
// rotation lock, after reloading the KEKs, so of several processes sharing
// the store that call it at once, or one after another within interval,
// exactly one rotates; the others reload the KEK it made and report
// Skipped (with NotDue and Age when the lock was free but no rotation was
// due).
// An interval of zero or less always rotates.
func (v *Vault) RotateIfDue(ctx context.Context, interval time.Duration) (RotationResult, error) {
	return v.rotate(ctx, max(interval, 0))
}

// rotate rotates when interval is 0 or the primary KEK is at least
// interval old.
func (v *Vault) rotate(ctx context.Context, interval time.Duration) (RotationResult, error) {
	unlock, ok, err := v.store.TryLock(ctx)
	if err != nil {
		return RotationResult{}, fmt.Errorf("secrets: rotation lock: %w", err)
	}
	if !ok {
		return RotationResult{Skipped: true}, v.reloadKEKs(ctx)
	}
	defer unlock()
	// Another process may have rotated since our last load.
	if err := v.reloadKEKs(ctx); err != nil {
		return RotationResult{}, err
	}
	if interval > 0 {
		if primary := v.ring.Primary(); primary != "" {
			age, err := v.store.Age(ctx, KEKPrefix+primary)
			switch {
			case errors.Is(err, ErrNotFound):
				// Retired meanwhile: a newer KEK exists; rotate.
			case err != nil:
				return RotationResult{}, fmt.Errorf("secrets: primary KEK age: %w", err)
			case age < interval:
				return RotationResult{Skipped: true, NotDue: true, Age: age}, nil
			}
		}
	}
	id, err := v.addKEK(ctx)
	if err != nil {
		return RotationResult{}, fmt.Errorf("secrets: adding a KEK: %w", err)
	}
	if err := v.reloadKEKs(ctx); err != nil {
		return RotationResult{}, err
	}
	res := RotationResult{KEKID: id}
	all, err := v.store.List(ctx, "")
	if err != nil {
		return res, fmt.Errorf("secrets: listing secrets: %w", err)
	}
	for _, r := range all {
		if strings.HasPrefix(r.ID, KEKPrefix) {
			continue
		}
		if err := v.rewrap(ctx, r); err != nil {
			return res, err
		}
		res.Rewrapped++
	}
	if err := v.retireKEKs(ctx); err != nil {
		return res, err
	}
	return res, nil
}

// retireKEKs deletes the KEK records older than the keepKEKs newest that no
// stored envelope names. It runs under the rotation lock, after a complete
// rewrap.
func (v *Vault) retireKEKs(ctx context.Context) error {
	all, err := v.store.List(ctx, "")
	if err != nil {
		return fmt.Errorf("secrets: listing secrets: %w", err)
	}
	inUse := map[string]bool{}
	var keks []string
	for _, r := range all {
		if id, ok := strings.CutPrefix(r.ID, KEKPrefix); ok {
			keks = append(keks, id)
			continue
		}
		if id := envelopeKEK(r.Envelope); id != "" {
			inUse[id] = true
		}
	}
	v.loadMu.Lock()
	maxSeq := v.maxSeq
	v.loadMu.Unlock()
	for _, id := range keks {
		if seq, ok := kekSeq(id); ok && seq <= maxSeq-keepKEKs && !inUse[id] {
			if err := v.store.Remove(ctx, KEKPrefix+id); err != nil {
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
func (v *Vault) rewrap(ctx context.Context, r Record) error {
	aad := []byte(secretAADPfx + r.ID)
	for range maxUpdateTries {
		env, err := v.ring.Rewrap(r.Envelope, aad)
		if err != nil {
			return fmt.Errorf("secrets: rewrapping %q: %w", r.ID, err)
		}
		err = v.store.Update(ctx, r.ID, env, r.Version)
		if !errors.Is(err, ErrConflict) {
			if err != nil {
				return fmt.Errorf("secrets: storing %q: %w", r.ID, err)
			}
			return nil
		}
		id := r.ID
		if r, err = v.store.Get(ctx, id); err != nil {
			return fmt.Errorf("secrets: re-reading %q: %w", id, err)
		}
	}
	return fmt.Errorf("secrets: %q changed %d times during its rewrap", r.ID, maxUpdateTries)
}

// RotateEvery returns a worker that keeps the primary KEK at most about
// interval old, across every process sharing the store: it calls
// [Vault.RotateIfDue] at start and then whenever the primary KEK, by the
// store's clock, reaches interval, so N replicas running it rotate once per
// interval, not N times (a replica that finds a KEK another one made just
// reloads it). A failed rotation is logged and tried again after interval;
// when another holder has the lock it checks again soon (a tenth of
// interval, at most a second). It runs until its context ends; run it in a
// goroutine the caller stops at shutdown.
func (v *Vault) RotateEvery(interval time.Duration) func(ctx context.Context) error {
	interval = max(interval, minRotationInterval)
	busyWait := min(interval/10, time.Second)
	return func(ctx context.Context) error {
		t := time.NewTimer(0)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			res, err := v.RotateIfDue(ctx, interval)
			wait := interval
			switch {
			case err != nil && ctx.Err() != nil:
				return nil
			case err != nil:
				v.log.Error("KEK rotation failed", "err", err)
			case res.NotDue:
				wait = max(interval-res.Age, time.Millisecond)
			case res.Skipped:
				v.log.Debug("KEK rotation: another holder has the lock")
				wait = busyWait
			default:
				v.log.Info("KEK rotated", "kek_id", res.KEKID, "rewrapped", res.Rewrapped)
			}
			t.Reset(wait)
		}
	}
}

func checkID(id string) error {
	if id == "" || len(id) > MaxIDLen || strings.HasPrefix(id, KEKPrefix) || !isPrintableASCII(id) {
		return contracts.New(contracts.CodeInvalidInput, "secrets: bad secret id")
	}
	return nil
}

func checkValue(id string, v []byte) error {
	if err := checkID(id); err != nil {
		return err
	}
	if len(v) == 0 || len(v) > MaxSecretSize {
		return contracts.New(contracts.CodeInvalidInput, "secrets: secret must be 1 to 65536 bytes")
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
