package audit

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/talosgo/talos/contracts"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Hash is a SHA-256 hash of the RFC 6962 Merkle tree (a leaf, a node or a
// root). It is tlog.Hash, so the proofs of golang.org/x/mod/sumdb/tlog work
// on it directly.
type Hash = tlog.Hash

// Errors of checkpoint and proof verification. Each matches (errors.Is)
// every error of its code.
var (
	// ErrBadCheckpoint: a checkpoint note is malformed, carries no valid
	// signature of the log's key, or names another origin.
	ErrBadCheckpoint = contracts.NewSentinel(contracts.CodeCryptoError, "")
	// ErrBadProof: an inclusion or consistency proof does not verify. It
	// shares the code of ErrBadCheckpoint, so each matches the other.
	ErrBadProof = contracts.NewSentinel(contracts.CodeCryptoError, "")
)

// ed25519 signature algorithm bytes of C2SP signed-note key hashes.
const (
	algEd25519     = 0x01
	algCosignature = 0x04
)

// A Checkpoint is the body of a C2SP tlog-checkpoint: the log's origin, the
// tree size and the root hash, plus optional extension lines. Note holds the
// whole signed note it was parsed from or signed as.
type Checkpoint struct {
	Origin     string
	Size       uint64
	Hash       Hash
	Extensions []string
	Note       []byte
}

// Tree returns the checkpoint as a tlog.Tree.
func (c Checkpoint) Tree() tlog.Tree { return tlog.Tree{N: int64(c.Size), Hash: c.Hash} }

// Body returns the note text the log signs: "<origin>\n<size>\n<base64
// root>\n" followed by the extension lines.
func (c Checkpoint) Body() []byte {
	var b bytes.Buffer
	b.WriteString(c.Origin)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatUint(c.Size, 10))
	b.WriteByte('\n')
	b.WriteString(base64.StdEncoding.EncodeToString(c.Hash[:]))
	b.WriteByte('\n')
	for _, e := range c.Extensions {
		b.WriteString(e)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func cpError(msg string) error {
	return &contracts.Error{Code: contracts.CodeCryptoError, Message: "audit: checkpoint: " + msg}
}

// ParseCheckpointBody parses the text of a checkpoint note (without
// signatures). It is strict: a non-empty origin without control characters,
// a canonical decimal size, a canonical standard-base64 32-byte hash, and
// non-empty extension lines. Every accepted body re-encodes to text.
func ParseCheckpointBody(text []byte) (Checkpoint, error) {
	if len(text) > MaxCheckpointSize {
		return Checkpoint{}, cpError("too large")
	}
	if len(text) == 0 || text[len(text)-1] != '\n' {
		return Checkpoint{}, cpError("body must end with a newline")
	}
	lines := strings.Split(string(text[:len(text)-1]), "\n")
	if len(lines) < 3 {
		return Checkpoint{}, cpError("body needs origin, size and hash lines")
	}
	if len(lines)-3 > MaxCheckpointExtensions {
		return Checkpoint{}, cpError("too many extension lines")
	}
	var c Checkpoint
	c.Origin = lines[0]
	if c.Origin == "" || !validNoteLine(c.Origin) {
		return Checkpoint{}, cpError("bad origin line")
	}
	n, err := strconv.ParseUint(lines[1], 10, 63)
	if err != nil || strconv.FormatUint(n, 10) != lines[1] {
		return Checkpoint{}, cpError("bad size line")
	}
	c.Size = n
	h, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(h) != sha256.Size || base64.StdEncoding.EncodeToString(h) != lines[2] {
		return Checkpoint{}, cpError("bad root hash line")
	}
	copy(c.Hash[:], h)
	for _, e := range lines[3:] {
		if e == "" || !validNoteLine(e) {
			return Checkpoint{}, cpError("bad extension line")
		}
		c.Extensions = append(c.Extensions, e)
	}
	return c, nil
}

func validNoteLine(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			return false
		}
	}
	return true
}

// OpenCheckpoint verifies a signed checkpoint note with the log's verifier
// and parses it. The note's origin must equal the verifier's name (C2SP: the
// log key is named after the origin). Other signatures (cosignatures) are
// ignored. Errors are TALOS_CRYPTO_ERROR ([ErrBadCheckpoint]).
func OpenCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	if len(msg) > MaxCheckpointSize {
		return Checkpoint{}, cpError("too large")
	}
	if v == nil {
		return Checkpoint{}, cpError("no verifier")
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, contracts.Wrap(contracts.CodeCryptoError, "audit: checkpoint: signature does not verify", err)
	}
	c, err := ParseCheckpointBody([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, cpError("origin does not match the log key name")
	}
	c.Note = append([]byte(nil), msg...)
	return c, nil
}

// VerifyCheckpoint is OpenCheckpoint with the verifier given as its C2SP
// verifier key text ("<name>+<hash>+<base64 key>").
func VerifyCheckpoint(msg []byte, verifierKey string) (Checkpoint, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return Checkpoint{}, contracts.Wrap(contracts.CodeInvalidInput, "audit: bad verifier key", err)
	}
	return OpenCheckpoint(msg, v)
}

// VerifyInclusion checks that the leaf with hash leafHash is entry index of
// the tree in cp. Use [LeafHash] on the stored entry bytes. Errors are
// TALOS_CRYPTO_ERROR ([ErrBadProof]).
func VerifyInclusion(proof tlog.RecordProof, cp Checkpoint, index uint64, leafHash Hash) error {
	if len(proof) > MaxProofHashes {
		return cpError("proof too long")
	}
	if index >= cp.Size || cp.Size > 1<<62 {
		return cpError("index outside the tree")
	}
	if err := tlog.CheckRecord(proof, int64(cp.Size), cp.Hash, int64(index), leafHash); err != nil {
		return contracts.Wrap(contracts.CodeCryptoError, "audit: inclusion proof does not verify", err)
	}
	return nil
}

// VerifyConsistency checks that the tree of newer extends the tree of older
// (RFC 6962 consistency). Both checkpoints must have the same origin.
func VerifyConsistency(proof tlog.TreeProof, older, newer Checkpoint) error {
	if len(proof) > MaxProofHashes {
		return cpError("proof too long")
	}
	if older.Origin != newer.Origin {
		return cpError("checkpoints of different logs")
	}
	if older.Size > newer.Size || newer.Size > 1<<62 {
		return cpError("older checkpoint is larger")
	}
	if older.Size == newer.Size {
		if older.Hash != newer.Hash || len(proof) != 0 {
			return cpError("two different trees of one size (split view)")
		}
		return nil
	}
	if older.Size == 0 {
		if len(proof) != 0 {
			return cpError("proof from the empty tree must be empty")
		}
		return nil
	}
	if err := tlog.CheckTree(proof, int64(newer.Size), newer.Hash, int64(older.Size), older.Hash); err != nil {
		return contracts.Wrap(contracts.CodeCryptoError, "audit: consistency proof does not verify", err)
	}
	return nil
}

// LeafHash returns the RFC 6962 leaf hash of an entry: SHA-256(0x00 ‖ entry).
func LeafHash(entry []byte) Hash { return tlog.RecordHash(entry) }

// keyHash is the C2SP signed-note key id: SHA-256(name ‖ "\n" ‖ alg ‖ key)[:4].
func keyHash(name string, alg byte, pub []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', alg})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// noteSigner signs notes with an Ed25519 crypto.Signer (an identity.Wallet's
// Signer), so the private key never leaves it.
type noteSigner struct {
	name string
	hash uint32
	s    crypto.Signer
}

func (s *noteSigner) Name() string    { return s.name }
func (s *noteSigner) KeyHash() uint32 { return s.hash }
func (s *noteSigner) Sign(msg []byte) ([]byte, error) {
	return s.s.Sign(nil, msg, crypto.Hash(0))
}

func ed25519Public(s crypto.Signer) (ed25519.PublicKey, error) {
	if s == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit: nil signer")
	}
	pub, ok := s.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit: signer is not Ed25519")
	}
	return pub, nil
}

// NewNoteSigner returns a C2SP signed-note signer named name (for a log: its
// origin) that signs with s, an Ed25519 crypto.Signer such as
// identity.Wallet.Signer(). Its key hash is the C2SP Ed25519 key id, so
// notes it signs verify with note.NewVerifier(VerifierKey(name, pub)).
func NewNoteSigner(name string, s crypto.Signer) (note.Signer, error) {
	pub, err := ed25519Public(s)
	if err != nil {
		return nil, err
	}
	if !validKeyName(name) {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit: invalid note key name")
	}
	return &noteSigner{name: name, hash: keyHash(name, algEd25519, pub), s: s}, nil
}

// VerifierKey returns the C2SP verifier key text of an Ed25519 log key:
// the only thing a client needs to verify checkpoints and proofs.
func VerifierKey(name string, pub ed25519.PublicKey) (string, error) {
	k, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		return "", contracts.Wrap(contracts.CodeInvalidInput, "audit: bad log key", err)
	}
	return k, nil
}

// NewVerifier returns the note verifier of an Ed25519 log key.
func NewVerifier(name string, pub ed25519.PublicKey) (note.Verifier, error) {
	k, err := VerifierKey(name, pub)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(k)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "audit: bad log key", err)
	}
	return v, nil
}

func validKeyName(name string) bool {
	return name != "" && utf8Valid(name) && !strings.ContainsAny(name, "+ \n") && validNoteLine(name)
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// SignCheckpoint signs c's body with s and returns c with Note set.
func SignCheckpoint(c Checkpoint, s note.Signer) (Checkpoint, error) {
	msg, err := note.Sign(&note.Note{Text: string(c.Body())}, s)
	if err != nil {
		return Checkpoint{}, contracts.Wrap(contracts.CodeCryptoError, "audit: cannot sign checkpoint", err)
	}
	c.Note = msg
	return c, nil
}
