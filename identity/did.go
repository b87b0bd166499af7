package identity

import (
	"crypto/ed25519"
	"encoding"
	"strings"

	"github.com/talosgo/talos/contracts"
)

// didKeyPrefix is the did:key method prefix followed by the multibase code
// for base58btc ('z').
const didKeyPrefix = "did:key:z"

// multicodecEd25519Pub is the unsigned-varint multicodec prefix of an
// Ed25519 public key (0xed, as the two-byte varint 0xed 0x01).
var multicodecEd25519Pub = [2]byte{0xed, 0x01}

// A DID is a did:key identifier of an Ed25519 public key:
//
//	did:key:z + base58btc(0xED 0x01 || public key)
//
// DID is a comparable value type: two DIDs are == exactly when they name the
// same key. The zero DID names no key; see [DID.IsZero]. A DID is immutable
// and safe for concurrent use.
type DID struct {
	pub [ed25519.PublicKeySize]byte
	set bool
}

var (
	_ encoding.TextAppender    = DID{}
	_ encoding.TextMarshaler   = DID{}
	_ encoding.TextUnmarshaler = (*DID)(nil)
)

// ErrInvalidDID is matched (errors.Is) by every error ParseDID and
// DID.UnmarshalText return. Its code is TALOS_INVALID_INPUT.
var ErrInvalidDID = contracts.NewSentinel(contracts.CodeInvalidInput, "identity: invalid did:key")

func didError(msg string) error {
	return contracts.Wrap(contracts.CodeInvalidInput, "identity: invalid did:key: "+msg, ErrInvalidDID)
}

// ParseDID parses a did:key identifier of an Ed25519 public key. It accepts
// exactly the strings DID.String returns: the "did:key:z" prefix, canonical
// base58btc, the Ed25519 multicodec 0xED 0x01 and a 32-byte key, with no
// trailing data, DID URL parts (path, query, fragment) or other
// multicodecs. Errors are *contracts.Error with code TALOS_INVALID_INPUT that
// match ErrInvalidDID.
func ParseDID(s string) (DID, error) {
	if len(s) > maxDIDLength {
		return DID{}, didError("too long")
	}
	rest, ok := strings.CutPrefix(s, didKeyPrefix)
	if !ok {
		if strings.HasPrefix(s, "did:key:") {
			return DID{}, didError("multibase encoding is not base58btc ('z')")
		}
		return DID{}, didError(`missing "did:key:z" prefix`)
	}
	var scratch [maxDIDLength]byte
	raw, ok := decodeBase58Scratch(scratch[:], rest)
	if !ok {
		return DID{}, didError("bad base58btc character")
	}
	if len(raw) < 2 || raw[0] != multicodecEd25519Pub[0] || raw[1] != multicodecEd25519Pub[1] {
		return DID{}, didError("multicodec is not ed25519-pub (0xed01)")
	}
	if len(raw) != 2+ed25519.PublicKeySize {
		return DID{}, didError("ed25519 public key is not 32 bytes")
	}
	var d DID
	copy(d.pub[:], raw[2:])
	d.set = true
	return d, nil
}

// MustParseDID is ParseDID for identifiers known to be valid (constants,
// test fixtures): it panics if s does not parse. Parse input from outside
// with ParseDID.
func MustParseDID(s string) DID {
	d, err := ParseDID(s)
	if err != nil {
		panic(err)
	}
	return d
}

// DIDFromPublicKey returns the did:key of an Ed25519 public key. A key that
// is not 32 bytes is an error with code TALOS_INVALID_INPUT.
func DIDFromPublicKey(pub ed25519.PublicKey) (DID, error) {
	if len(pub) != ed25519.PublicKeySize {
		return DID{}, contracts.New(contracts.CodeInvalidInput, "identity: ed25519 public key must be 32 bytes")
	}
	var d DID
	copy(d.pub[:], pub)
	d.set = true
	return d, nil
}

// IsZero reports whether d is the zero DID, which names no key.
func (d DID) IsZero() bool { return !d.set }

// PublicKey returns a fresh copy of the Ed25519 public key named by d, or
// nil for the zero DID.
func (d DID) PublicKey() ed25519.PublicKey {
	if !d.set {
		return nil
	}
	return append(ed25519.PublicKey(nil), d.pub[:]...)
}

// Verify reports whether sig is a valid Ed25519 signature of msg by the key
// d names. It is false for the zero DID and never panics.
func (d DID) Verify(msg, sig []byte) bool {
	if !d.set {
		return false
	}
	return Verify(msg, sig, d.pub[:])
}

// String returns the did:key text of d, or "" for the zero DID.
func (d DID) String() string {
	if !d.set {
		return ""
	}
	var buf [64]byte
	return string(d.appendTo(buf[:0]))
}

func (d DID) appendTo(b []byte) []byte {
	var raw [2 + ed25519.PublicKeySize]byte
	copy(raw[:2], multicodecEd25519Pub[:])
	copy(raw[2:], d.pub[:])
	b = append(b, didKeyPrefix...)
	return appendBase58(b, raw[:])
}

// AppendText implements encoding.TextAppender. The zero DID is an error:
// a DID field that was never set must not silently encode as "".
func (d DID) AppendText(b []byte) ([]byte, error) {
	if !d.set {
		return nil, contracts.New(contracts.CodeInvalidInput, "identity: cannot encode the zero DID")
	}
	return d.appendTo(b), nil
}

// MarshalText implements encoding.TextMarshaler; see AppendText.
func (d DID) MarshalText() ([]byte, error) { return d.AppendText(nil) }

// UnmarshalText implements encoding.TextUnmarshaler with ParseDID. On error
// *d is unchanged.
func (d *DID) UnmarshalText(text []byte) error {
	if len(text) > maxDIDLength {
		return didError("too long")
	}
	p, err := ParseDID(string(text))
	if err != nil {
		return err
	}
	*d = p
	return nil
}
