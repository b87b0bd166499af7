package identity

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/talosgo/talos/contracts"
)

// KEKSize is the size of a key-encryption key: AES-256.
const KEKSize = 32

const (
	gcmNonceSize = 12
	gcmTagSize   = 16

	hexEnvelopeSchemaID = "talos.secrets.envelope"
	hexEnvelopeVersion  = "v1"
	hexEnvelopeAlg      = "aes-256-gcm"
)

// ErrEnvelopeOpen is returned by Keyring.Open and Rewrap for an envelope
// that is well formed but does not decrypt and authenticate under its KEK
// and the given associated data. It deliberately carries no detail. Its
// code is TALOS_CRYPTO_ERROR.
var ErrEnvelopeOpen = contracts.NewSentinel(contracts.CodeCryptoError, "identity: envelope cannot be opened")

// A Keyring holds AES-256-GCM key-encryption keys (KEKs), each with an id,
// one of which is the primary. Seal encrypts under the primary; Open uses
// the KEK the envelope names, so after a rotation (Add a new key,
// SetPrimary) envelopes sealed under older keys still open, and Rewrap
// moves them to the primary.
//
// Seal writes the contract's secrets/envelope.v1 form, canonical JSON
//
//	{"aad_b64u":…,"ciphertext_b64u":…,"kek_id":…,"nonce_b64u":…,"tag_b64u":…}
//
// (aad_b64u only when there is associated data). Open also reads the hex
// form of secrets/envelope.schema.json ({"schema_id":"talos.secrets.envelope",
// "schema_version":"v1","kek_id","iv","ciphertext","tag","alg":"aes-256-gcm",
// "created_at"?}).
//
// KEK bytes never appear in String, GoString, any fmt verb or LogValue. Each
// KEK seals at most 2^32 messages (random 96-bit nonces); after that Seal
// fails and the keyring must be rotated. The count is per process.
//
// A Keyring is safe for concurrent use. The zero value is an empty keyring,
// ready for Add (as is NewKeyring's).
type Keyring struct {
	rand io.Reader

	mu      sync.RWMutex // guards keys and primary
	keys    map[string]hidden[kek]
	primary string
}

type kek struct {
	_     [0]func()
	aead  cipher.AEAD // holds the AES key schedule; the raw KEK is not kept
	seals atomic.Uint64
}

// NewKeyring returns an empty keyring.
func NewKeyring() *Keyring {
	return &Keyring{rand: rand.Reader, keys: make(map[string]hidden[kek])}
}

func validKEKID(id string) bool {
	return len(id) > 0 && len(id) <= maxKeyIDLength && isASCIIRange(id, '!', '~')
}

// Add adds a 32-byte KEK under id (1–255 visible ASCII characters). The
// key is copied. The first key added becomes the primary. Adding an id that
// is already present is an error: keys are never silently replaced. Errors
// have code TALOS_INVALID_INPUT.
func (k *Keyring) Add(id string, key []byte) error {
	if !validKEKID(id) {
		return contracts.New(contracts.CodeInvalidInput, "identity: KEK id must be 1-255 visible ASCII characters")
	}
	if len(key) != KEKSize {
		return contracts.New(contracts.CodeInvalidInput, fmt.Sprintf("identity: KEK must be %d bytes, got %d", KEKSize, len(key)))
	}
	e := &kek{}
	block, err := aes.NewCipher(key)
	if err != nil {
		return contracts.Wrap(contracts.CodeCryptoError, "identity: creating AES cipher", err)
	}
	if e.aead, err = cipher.NewGCM(block); err != nil {
		return contracts.Wrap(contracts.CodeCryptoError, "identity: creating GCM", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = make(map[string]hidden[kek]) // the zero Keyring is usable
	}
	if _, ok := k.keys[id]; ok {
		return contracts.New(contracts.CodeInvalidInput, "identity: KEK id already present")
	}
	if len(k.keys) >= maxKEKs {
		return contracts.New(contracts.CodeInvalidInput, "identity: keyring is full")
	}
	k.keys[id] = hide(e)
	if k.primary == "" {
		k.primary = id
	}
	return nil
}

// SetPrimary makes the KEK id the one Seal and Rewrap use. An unknown id is
// an error with code NOT_FOUND.
func (k *Keyring) SetPrimary(id string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.keys[id]; !ok {
		return contracts.New(contracts.CodeNotFound, "identity: unknown KEK id")
	}
	k.primary = id
	return nil
}

// Remove deletes the KEK id; envelopes sealed under it no longer open.
// Removing the primary is an error with code TALOS_INVALID_INPUT; an
// unknown id is NOT_FOUND.
func (k *Keyring) Remove(id string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.keys[id]; !ok {
		return contracts.New(contracts.CodeNotFound, "identity: unknown KEK id")
	}
	if id == k.primary {
		return contracts.New(contracts.CodeInvalidInput, "identity: cannot remove the primary KEK")
	}
	delete(k.keys, id)
	return nil
}

// Primary returns the primary KEK id, or "" for an empty keyring.
func (k *Keyring) Primary() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.primary
}

// IDs returns the KEK ids, sorted.
func (k *Keyring) IDs() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	ids := make([]string, 0, len(k.keys))
	for id := range k.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// String describes the keyring by its key ids only.
func (k *Keyring) String() string {
	return "identity.Keyring(primary=" + k.Primary() + " ids=" + strings.Join(k.IDs(), ",") + ")"
}

// GoString returns String, so %#v shows no key bytes.
func (k *Keyring) GoString() string { return k.String() }

// Format implements fmt.Formatter: every verb prints String.
func (k *Keyring) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue implements slog.LogValuer with the key ids only.
func (k *Keyring) LogValue() slog.Value {
	return slog.GroupValue(slog.String("primary", k.Primary()), slog.Any("ids", k.IDs()))
}

func (k *Keyring) lookup(id string) (*kek, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	e, ok := k.keys[id]
	if !ok {
		return nil, false
	}
	return e.get(), true
}

// envelopeV1 is the contract secrets/envelope.v1 form.
type envelopeV1 struct {
	AAD        string `json:"aad_b64u,omitempty"`
	Ciphertext string `json:"ciphertext_b64u"`
	KEKID      string `json:"kek_id"`
	Nonce      string `json:"nonce_b64u"`
	Tag        string `json:"tag_b64u"`
}

// Seal encrypts plaintext with associated data aad under the primary KEK
// and returns the envelope.v1 JSON. The contract convention for aad is
// "talos.secret.v1:<secret id>"; aad is carried in the envelope (aad_b64u)
// but Open still requires the caller to supply it. An empty plaintext is
// an error (the v1 form cannot carry an empty ciphertext). Errors have
// code TALOS_INVALID_INPUT (no primary, bad sizes) or TALOS_CRYPTO_ERROR
// (randomness failure, KEK exhausted).
func (k *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	k.mu.RLock()
	id := k.primary
	k.mu.RUnlock()
	if id == "" {
		return nil, contracts.New(contracts.CodeInvalidInput, "identity: keyring has no primary KEK")
	}
	return k.sealWith(id, plaintext, aad)
}

func (k *Keyring) sealWith(id string, plaintext, aad []byte) ([]byte, error) {
	if len(plaintext) == 0 {
		return nil, contracts.New(contracts.CodeInvalidInput, "identity: cannot seal an empty secret")
	}
	if len(plaintext)+len(aad) > maxEnvelopeSize/2 {
		return nil, contracts.New(contracts.CodeInvalidInput, "identity: secret too large to seal")
	}
	e, ok := k.lookup(id)
	if !ok {
		return nil, contracts.New(contracts.CodeNotFound, "identity: unknown KEK id")
	}
	if e.seals.Add(1) > maxSealsPerKEK {
		return nil, contracts.New(contracts.CodeCryptoError, "identity: KEK has sealed 2^32 messages; rotate the keyring")
	}
	var nonce [gcmNonceSize]byte
	r := k.rand
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, nonce[:]); err != nil {
		return nil, contracts.Wrap(contracts.CodeCryptoError, "identity: reading randomness", err)
	}
	out := e.aead.Seal(nil, nonce[:], plaintext, aad)
	ct, tag := out[:len(out)-gcmTagSize], out[len(out)-gcmTagSize:]
	env := envelopeV1{
		Ciphertext: contracts.EncodeBase64URL(ct),
		KEKID:      id,
		Nonce:      contracts.EncodeBase64URL(nonce[:]),
		Tag:        contracts.EncodeBase64URL(tag),
	}
	if len(aad) > 0 {
		env.AAD = contracts.EncodeBase64URL(aad)
	}
	return contracts.Marshal(env)
}

// envelope is a parsed envelope of either form.
type envelope struct {
	kekID  string
	nonce  []byte
	ct     []byte // without the tag
	tag    []byte
	aad    []byte
	hasAAD bool
}

// parseEnvelope checks the shape of either envelope form. Errors have code
// TALOS_INVALID_INPUT.
func parseEnvelope(b []byte) (envelope, error) {
	bad := func(msg string) (envelope, error) {
		return envelope{}, contracts.New(contracts.CodeInvalidInput, "identity: invalid envelope: "+msg)
	}
	if len(b) > maxEnvelopeSize {
		return bad("too large")
	}
	if err := contracts.CheckJSON(b, true); err != nil {
		return envelope{}, contracts.Wrap(contracts.CodeInvalidInput, "identity: invalid envelope: bad JSON", err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return bad("not an object of strings")
	}
	var env envelope
	env.kekID = m["kek_id"]
	if !validKEKID(env.kekID) {
		return bad("kek_id must be 1-255 visible ASCII characters")
	}
	b64 := func(name string) ([]byte, error) {
		v, ok := m[name]
		if !ok {
			return nil, fmt.Errorf("missing %s", name)
		}
		d, err := contracts.DecodeBase64URL(v)
		if err != nil || len(d) == 0 {
			return nil, fmt.Errorf("%s is not non-empty strict base64url", name)
		}
		return d, nil
	}
	hexField := func(name string, n int) ([]byte, error) {
		v, ok := m[name]
		if !ok {
			return nil, fmt.Errorf("missing %s", name)
		}
		if len(v) == 0 || len(v)%2 != 0 || (n > 0 && len(v) != 2*n) || !isLowerHex(v) {
			return nil, fmt.Errorf("%s is not lowercase hex of the right length", name)
		}
		d, _ := hex.DecodeString(v)
		return d, nil
	}
	var err error
	switch {
	case has(m, "nonce_b64u"):
		if !onlyKeys(m, "kek_id", "nonce_b64u", "ciphertext_b64u", "tag_b64u", "aad_b64u") {
			return bad("unknown field")
		}
		if env.nonce, err = b64("nonce_b64u"); err != nil {
			return bad(err.Error())
		}
		if env.ct, err = b64("ciphertext_b64u"); err != nil {
			return bad(err.Error())
		}
		if env.tag, err = b64("tag_b64u"); err != nil {
			return bad(err.Error())
		}
		if has(m, "aad_b64u") {
			if env.aad, err = b64("aad_b64u"); err != nil {
				return bad(err.Error())
			}
			env.hasAAD = true
		}
	case has(m, "schema_id"):
		if !onlyKeys(m, "schema_id", "schema_version", "kek_id", "iv", "ciphertext", "tag", "alg", "created_at") {
			return bad("unknown field")
		}
		if m["schema_id"] != hexEnvelopeSchemaID || m["schema_version"] != hexEnvelopeVersion || m["alg"] != hexEnvelopeAlg {
			return bad(`schema_id, schema_version and alg must be "talos.secrets.envelope", "v1" and "aes-256-gcm"`)
		}
		if c, ok := m["created_at"]; ok && !validCreatedAt(c) {
			return bad("created_at is not YYYY-MM-DDTHH:MM:SS.mmmZ")
		}
		if env.nonce, err = hexField("iv", gcmNonceSize); err != nil {
			return bad(err.Error())
		}
		if env.ct, err = hexField("ciphertext", 0); err != nil {
			return bad(err.Error())
		}
		if env.tag, err = hexField("tag", gcmTagSize); err != nil {
			return bad(err.Error())
		}
	default:
		return bad("neither the envelope.v1 nor the hex form")
	}
	if len(env.nonce) != gcmNonceSize || len(env.tag) != gcmTagSize {
		return bad("nonce must be 12 bytes and tag 16 bytes")
	}
	return env, nil
}

func has(m map[string]string, k string) bool { _, ok := m[k]; return ok }

func onlyKeys(m map[string]string, allowed ...string) bool {
	for k := range m {
		if !slices.Contains(allowed, k) {
			return false
		}
	}
	return true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validCreatedAt checks the pattern ^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$.
func validCreatedAt(s string) bool {
	const layout = "dddd-dd-ddTdd:dd:dd.dddZ"
	if len(s) != len(layout) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if layout[i] == 'd' {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		} else if s[i] != layout[i] {
			return false
		}
	}
	return true
}

// Open decrypts an envelope of either form with associated data aad. If
// the envelope carries aad_b64u it must equal aad: the caller states the
// context it expects, the envelope cannot choose it. Errors: a malformed
// envelope is TALOS_INVALID_INPUT; an unknown kek_id is NOT_FOUND; anything
// that fails to decrypt or authenticate is ErrEnvelopeOpen.
func (k *Keyring) Open(envelope, aad []byte) ([]byte, error) {
	env, err := parseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	return k.open(env, aad)
}

func (k *Keyring) open(env envelope, aad []byte) ([]byte, error) {
	e, ok := k.lookup(env.kekID)
	if !ok {
		return nil, contracts.New(contracts.CodeNotFound, "identity: envelope names an unknown KEK id")
	}
	if env.hasAAD && !bytes.Equal(env.aad, aad) {
		return nil, ErrEnvelopeOpen
	}
	sealed := make([]byte, 0, len(env.ct)+gcmTagSize)
	sealed = append(append(sealed, env.ct...), env.tag...)
	pt, err := e.aead.Open(sealed[:0], env.nonce, sealed, aad)
	if err != nil {
		clear(sealed)
		return nil, ErrEnvelopeOpen
	}
	return pt, nil
}

// Rewrap opens envelope with aad and seals the plaintext again under the
// primary KEK (with a fresh nonce), returning an envelope.v1. Errors are
// those of Open and Seal.
func (k *Keyring) Rewrap(envelope, aad []byte) ([]byte, error) {
	pt, err := k.Open(envelope, aad)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return k.Seal(pt, aad)
}
