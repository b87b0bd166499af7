package identity

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/talosgo/talos/contracts"
)

// walletTextPrefix starts the only serialized form of a wallet's secret. It
// stops a seed from ever parsing as a public key, a DID or another key kind.
const walletTextPrefix = "talos-wallet-seed:"

// A Wallet is an Ed25519 identity: a 32-byte seed (the private key), its
// public key, did:key and address, and an optional human-readable name.
//
// The seed never appears in String, GoString, any fmt verb, LogValue or
// MarshalJSON. It leaves the process only through MarshalPrivateText or
// AppendPrivateText, whose output starts with "talos-wallet-seed:".
//
// A Wallet is immutable and safe for concurrent use. Wallets are not
// comparable with ==; use Equal. The zero Wallet holds no key: obtain
// wallets from GenerateWallet, WalletFromSeed or ParseWalletText; key
// methods of a zero Wallet panic.
type Wallet struct {
	_    [0]func() // not comparable: use Equal
	name string
	key  hidden[walletKey] // never printed by fmt; see hidden
	did  DID
	addr string
}

// walletKey holds the secret. It redacts itself too, in case a reflection
// based printer reaches it.
type walletKey struct {
	_    [0]func()
	seed [ed25519.SeedSize]byte
	priv ed25519.PrivateKey // seed || public key, cached for signing
}

func (*walletKey) String() string               { return "identity.walletKey(redacted)" }
func (*walletKey) GoString() string             { return "identity.walletKey(redacted)" }
func (k *walletKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }
func (*walletKey) LogValue() slog.Value         { return slog.StringValue("redacted") }
func (*walletKey) MarshalJSON() ([]byte, error) { return nil, errSecretJSON }
func (*walletKey) MarshalText() ([]byte, error) { return nil, errSecretJSON }

var errSecretJSON = errors.New("identity: refusing to encode a private key")

// GenerateWallet returns a wallet with a fresh seed from crypto/rand.
func GenerateWallet(name string) (*Wallet, error) {
	var seed [ed25519.SeedSize]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, contracts.Wrap(contracts.CodeCryptoError, "identity: reading randomness", err)
	}
	w := newWallet(name, seed)
	clear(seed[:])
	return w, nil
}

// WalletFromSeed returns the wallet of a 32-byte Ed25519 seed (RFC 8032
// private key). The seed is copied. Any other length is an error with code
// TALOS_INVALID_INPUT whose message contains "seed". The wallet's name is
// empty; see WithName.
func WalletFromSeed(seed []byte) (*Wallet, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, contracts.New(contracts.CodeInvalidInput,
			fmt.Sprintf("identity: seed must be %d bytes, got %d", ed25519.SeedSize, len(seed)))
	}
	return newWallet("", [ed25519.SeedSize]byte(seed)), nil
}

func newWallet(name string, seed [ed25519.SeedSize]byte) *Wallet {
	k := &walletKey{seed: seed, priv: ed25519.NewKeyFromSeed(seed[:])}
	pub := k.priv[ed25519.SeedSize:]
	w := &Wallet{name: name, key: hide(k)}
	copy(w.did.pub[:], pub)
	w.did.set = true
	sum := sha256.Sum256(pub)
	w.addr = hex.EncodeToString(sum[:])
	return w
}

// WithName returns a wallet with the same key and the given name.
func (w *Wallet) WithName(name string) *Wallet {
	c := &Wallet{name: name, key: w.key, did: w.did, addr: w.addr}
	return c
}

// Name returns the wallet's human-readable name (possibly empty).
func (w *Wallet) Name() string { return w.name }

// DID returns the did:key of the wallet's public key.
func (w *Wallet) DID() DID { return w.did }

// Address returns the lowercase hex SHA-256 of the 32-byte public key
// (64 characters), as every Talos SDK computes it.
func (w *Wallet) Address() string { return w.addr }

// PublicKey returns a fresh copy of the wallet's Ed25519 public key.
func (w *Wallet) PublicKey() ed25519.PublicKey { return w.did.PublicKey() }

// Sign returns the 64-byte Ed25519 signature of msg (RFC 8032 pure Ed25519,
// deterministic).
//
// Sign signs any bytes it is given. Protocol code in this library signs
// only structured, domain-specific inputs (canonical tokens, attestation
// signing inputs); do not expose Sign to untrusted callers as a
// "sign anything" service, or they can obtain signatures that verify in
// another protocol context.
func (w *Wallet) Sign(msg []byte) []byte { return ed25519.Sign(w.key.get().priv, msg) }

// Verify reports whether sig is the wallet key's signature of msg.
func (w *Wallet) Verify(msg, sig []byte) bool { return w.did.Verify(msg, sig) }

// Signer returns a crypto.Signer backed by the wallet's key, for APIs such
// as crypto/tls, x/crypto/ssh or golang.org/x/mod/sumdb/note that take one.
// Wallet itself cannot implement crypto.Signer because its contract method
// Sign(msg) []byte has a different signature. The signer's Public returns
// an ed25519.PublicKey; its Sign behaves as ed25519.PrivateKey.Sign (pure
// Ed25519 for opts.HashFunc() == 0, Ed25519ph or Ed25519ctx with
// *ed25519.Options). The signer redacts itself like the wallet.
func (w *Wallet) Signer() crypto.Signer { return walletSigner{k: w.key} }

type walletSigner struct{ k hidden[walletKey] }

func (s walletSigner) Public() crypto.PublicKey {
	return append(ed25519.PublicKey(nil), s.k.get().priv[ed25519.SeedSize:]...)
}

func (s walletSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.k.get().priv.Sign(rand, digest, opts)
}

func (walletSigner) String() string   { return "identity.Signer(redacted)" }
func (walletSigner) GoString() string { return "identity.Signer(redacted)" }

// Equal reports whether w and o hold the same key, in constant time. Names
// are not compared. Nil wallets are equal only to each other.
func (w *Wallet) Equal(o *Wallet) bool {
	if w == nil || o == nil {
		return w == o
	}
	return subtle.ConstantTimeCompare(w.key.get().seed[:], o.key.get().seed[:]) == 1
}

// String returns "identity.Wallet(<name> <did>)" with public data only.
func (w *Wallet) String() string {
	if w == nil || w.key.p == nil {
		return "identity.Wallet(nil)"
	}
	return "identity.Wallet(" + strconv.Quote(w.name) + " " + w.did.String() + ")"
}

// GoString returns the same text as String, so %#v shows no secret.
func (w *Wallet) GoString() string { return w.String() }

// Format implements fmt.Formatter: every verb, flag and width prints
// String, so no verb (%x, %d, %+v, ...) can reach the seed.
func (w *Wallet) Format(f fmt.State, _ rune) { io.WriteString(f, w.String()) }

// LogValue implements slog.LogValuer with the public fields only.
func (w *Wallet) LogValue() slog.Value {
	if w == nil || w.key.p == nil {
		return slog.StringValue("identity.Wallet(nil)")
	}
	return slog.GroupValue(
		slog.String("name", w.name),
		slog.String("did", w.did.String()),
		slog.String("address", w.addr),
	)
}

// walletJSON is the public JSON form of a wallet.
type walletJSON struct {
	Name      string `json:"name"`
	DID       string `json:"did"`
	Address   string `json:"address"`
	PublicKey string `json:"public_key"`
}

// MarshalJSON returns the public fields only:
// {"address","did","name","public_key"} with the key in base64url.
func (w *Wallet) MarshalJSON() ([]byte, error) {
	if w == nil || w.key.p == nil {
		return []byte("null"), nil
	}
	return json.Marshal(walletJSON{
		Name:      w.name,
		DID:       w.did.String(),
		Address:   w.addr,
		PublicKey: contracts.EncodeBase64URL(w.did.pub[:]),
	})
}

// UnmarshalJSON always fails: a wallet cannot be rebuilt from its public
// JSON form. Use ParseWalletText for the private text form.
func (w *Wallet) UnmarshalJSON([]byte) error {
	return contracts.New(contracts.CodeInvalidInput,
		"identity: a Wallet cannot be decoded from JSON; use ParseWalletText")
}

// AppendPrivateText appends the wallet's secret text form,
// "talos-wallet-seed:" followed by the unpadded base64url seed, to b. This
// is the only way to serialize the secret; treat the output as a private
// key. The name is not included.
//
// The method is deliberately not named AppendText or MarshalText: encoders
// that look for encoding.TextAppender or encoding.TextMarshaler (encoding/json,
// log/slog, ...) must never pick up the secret by accident.
func (w *Wallet) AppendPrivateText(b []byte) ([]byte, error) {
	b = append(b, walletTextPrefix...)
	return append(b, contracts.EncodeBase64URL(w.key.get().seed[:])...), nil
}

// MarshalPrivateText returns AppendPrivateText(nil).
func (w *Wallet) MarshalPrivateText() ([]byte, error) { return w.AppendPrivateText(nil) }

// ParseWalletText parses the text form written by MarshalPrivateText. The
// input must be exactly the prefix and the strict base64url of 32 bytes (no
// whitespace or padding). Errors are *contracts.Error with code
// TALOS_INVALID_INPUT and never echo the input.
func ParseWalletText(text []byte) (*Wallet, error) {
	if len(text) > maxWalletTextLength {
		return nil, contracts.New(contracts.CodeInvalidInput, "identity: wallet text too long")
	}
	rest, ok := strings.CutPrefix(string(text), walletTextPrefix)
	if !ok {
		return nil, contracts.New(contracts.CodeInvalidInput, `identity: wallet text lacks the "talos-wallet-seed:" prefix`)
	}
	seed, err := contracts.DecodeBase64URL(rest)
	if err != nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "identity: wallet seed is not strict base64url")
	}
	defer clear(seed)
	return WalletFromSeed(seed)
}

// Verify reports whether sig is a valid Ed25519 signature of msg by the
// public key pub. It returns false, and never panics, for any length of
// pub or sig other than 32 and 64 bytes.
func Verify(msg, sig, pub []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(pub, msg, sig)
}
