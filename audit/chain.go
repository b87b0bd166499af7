package audit

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/talosgo/talos/contracts"
)

// DigestEncoding selects how a chain digest is written as text.
type DigestEncoding int

const (
	// Hex is lowercase hexadecimal (64 characters): A2A session and group
	// event digests, and the TGA golden traces.
	Hex DigestEncoding = iota
	// Base64URL is unpadded base64url (43 characters): the TGA v1 schemas.
	Base64URL
)

// Genesis values of prev_entry_digest for the first TGA execution log entry:
// 32 zero bytes in each encoding.
const (
	GenesisHex       = "0000000000000000000000000000000000000000000000000000000000000000"
	GenesisBase64URL = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
)

// ErrChainBroken matches (errors.Is) every error reporting a hash-chain
// object whose digest does not recompute or whose link does not point at the
// previous object. Its code is TGA_HASH_CHAIN_BROKEN.
var ErrChainBroken = contracts.NewSentinel(contracts.CodeTGAHashChainBroken, "")

// A ChainSpec names the fields of one hash-chained object family.
// The zero value is not usable; use one of the predefined specs or set
// DigestField.
type ChainSpec struct {
	// DigestField holds the object's own digest and is removed from the
	// preimage. Required.
	DigestField string
	// PrevField holds the previous object's digest. It is part of the
	// preimage. If empty, objects are hashed but not linked.
	PrevField string
	// Genesis is the PrevField value required on the first object. If empty,
	// the first object must not carry PrevField (A2A events); otherwise it
	// must carry exactly this value (TGA execution logs).
	Genesis string
	// Encoding of DigestField and PrevField values. Verification also
	// accepts the other encoding of the same 32 bytes when AcceptBoth is set.
	Encoding DigestEncoding
	// AcceptBoth makes verification accept hex and base64url digests alike
	// (the TGA contracts use both). Output always uses Encoding.
	AcceptBoth bool
}

// Predefined chain specs of the Talos contracts.
var (
	// SessionEventChain is talos.a2a.session_event: event_digest =
	// hex(sha256(JCS(event − event_digest))), previous_digest absent on the
	// first event of a session and equal to the previous event_digest after.
	SessionEventChain = ChainSpec{DigestField: "event_digest", PrevField: "previous_digest"}
	// GroupEventChain is talos.a2a.group_event, with the same rule.
	GroupEventChain = ChainSpec{DigestField: "event_digest", PrevField: "previous_digest"}
	// ExecutionLogChain is the TGA execution log: entry_digest over the entry
	// minus entry_digest, prev_entry_digest = 32 zero bytes on seq 1. Hex by
	// default (the reference vectors); base64url digests are accepted too.
	ExecutionLogChain = ChainSpec{DigestField: "entry_digest", PrevField: "prev_entry_digest",
		Genesis: GenesisHex, AcceptBoth: true}
	// ArtifactDigest is a TGA artifact (action_request, supervisor_decision,
	// tool_call, tool_effect): _digest over the artifact minus _digest, with
	// _digest_alg kept in the preimage. Links are typed fields
	// (action_request_digest, ...); see [VerifyArtifactChain].
	ArtifactDigest = ChainSpec{DigestField: "_digest", AcceptBoth: true}
)

// ChainDigest returns the lowercase hex SHA-256 of the canonical JSON (RFC
// 8785) of event with the top-level member digestField removed. Every other
// member, including a previous-digest link, stays in the preimage.
//
// event may be JSON text ([]byte, json.RawMessage or string), a
// map[string]any, or any value that encoding/json marshals to an object.
// It returns a *contracts.Error (TALOS_INVALID_INPUT) when event is not a
// single JSON object, has duplicate keys, lone surrogates or integers
// beyond ±(2^53−1), or exceeds [MaxChainObjectSize].
func ChainDigest(event any, digestField string) (string, error) {
	sum, err := chainSum(event, digestField)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(sum[:]), nil
}

func chainSum(event any, digestField string) ([sha256.Size]byte, error) {
	members, err := objectMembers(event)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	delete(members, digestField)
	canon, err := canonicalMembers(members)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(canon), nil
}

// objectMembers returns the top-level members of a JSON object after
// validating the input rules of the contracts.
func objectMembers(event any) (map[string]json.RawMessage, error) {
	var raw []byte
	switch v := event.(type) {
	case []byte:
		raw = v
	case json.RawMessage:
		raw = v
	case string:
		raw = []byte(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, contracts.Wrap(contracts.CodeInvalidInput, "audit: chain object does not marshal to JSON", err)
		}
		raw = b
	}
	if len(raw) > MaxChainObjectSize {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit: chain object too large")
	}
	canon, err := contracts.Canonicalize(raw)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "audit: chain object is not valid JSON", err)
	}
	if len(canon) == 0 || canon[0] != '{' {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit: chain object is not a JSON object")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(canon, &members); err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "audit: chain object is not a JSON object", err)
	}
	return members, nil
}

// canonicalMembers re-encodes members canonically. encoding/json sorts the
// keys but escapes HTML characters, so the result goes through the canonical
// encoder once more.
func canonicalMembers(members map[string]json.RawMessage) ([]byte, error) {
	b, err := json.Marshal(members)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "audit: chain object does not re-encode", err)
	}
	canon, err := contracts.Canonicalize(b)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "audit: chain object does not re-encode", err)
	}
	return canon, nil
}

// encode writes sum in the spec's encoding.
func (s ChainSpec) encode(sum [sha256.Size]byte) string {
	if s.Encoding == Base64URL {
		return base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return hex.EncodeToString(sum[:])
}

// decodeDigest parses a digest written in the spec's encoding (or either
// encoding with AcceptBoth). It reports false for any other text.
func (s ChainSpec) decodeDigest(text string) ([sha256.Size]byte, bool) {
	var out [sha256.Size]byte
	tryHex := s.Encoding == Hex || s.AcceptBoth
	tryB64 := s.Encoding == Base64URL || s.AcceptBoth
	if tryHex && len(text) == 2*sha256.Size && strings.ToLower(text) == text {
		if _, err := hex.Decode(out[:], []byte(text)); err == nil {
			return out, true
		}
	}
	if tryB64 && len(text) == 43 {
		b, err := contracts.DecodeBase64URL(text)
		if err == nil && len(b) == sha256.Size {
			copy(out[:], b)
			return out, true
		}
	}
	return out, false
}

// genesisSum reports whether the spec has a genesis link and returns it.
func (s ChainSpec) genesisSum() ([sha256.Size]byte, bool) {
	if s.Genesis == "" {
		return [sha256.Size]byte{}, false
	}
	sum, ok := s.decodeDigest(s.Genesis)
	if !ok {
		sum, ok = (ChainSpec{AcceptBoth: true}).decodeDigest(s.Genesis)
	}
	return sum, ok
}

// A Chain follows one hash-chained sequence (the events of one A2A session
// or group, the entries of one TGA trace). It seals new objects onto the
// head and verifies received ones. A Chain is not safe for concurrent use.
type Chain struct {
	spec    ChainSpec
	head    [sha256.Size]byte
	hasHead bool
	n       int
}

// NewChain returns an empty chain following spec. It panics if
// spec.DigestField is empty or spec.Genesis is not a digest, which are
// programming errors.
func NewChain(spec ChainSpec) *Chain {
	if spec.DigestField == "" {
		panic("audit: ChainSpec.DigestField is required")
	}
	if spec.Genesis != "" {
		if _, ok := spec.genesisSum(); !ok {
			panic("audit: ChainSpec.Genesis is not a SHA-256 digest")
		}
	}
	return &Chain{spec: spec}
}

// ResumeChain returns a chain whose head is the digest of an already
// verified object, after n objects. It returns TALOS_INVALID_INPUT if head
// is not a digest in the spec's encoding.
func ResumeChain(spec ChainSpec, head string, n int) (*Chain, error) {
	c := NewChain(spec)
	sum, ok := spec.decodeDigest(head)
	if !ok {
		return nil, contracts.New(contracts.CodeInvalidInput, "audit: chain head is not a digest")
	}
	c.head, c.hasHead, c.n = sum, true, n
	return c, nil
}

// Head returns the digest of the last object sealed or verified, in the
// spec's encoding, or "" for an empty chain.
func (c *Chain) Head() string {
	if !c.hasHead {
		return ""
	}
	return c.spec.encode(c.head)
}

// Len returns the number of objects sealed or verified so far.
func (c *Chain) Len() int { return c.n }

// Link returns the value the next object must carry in PrevField, or ""
// when the next object must not carry it (the first A2A event).
func (c *Chain) Link() string {
	if c.hasHead {
		return c.spec.encode(c.head)
	}
	return c.spec.Genesis
}

// Seal sets PrevField of event to [Chain.Link] (removing it when the link is
// empty), computes DigestField, advances the head, and returns the
// canonical JSON of the sealed object and its digest. Any DigestField value
// already in event is replaced. On error the chain is unchanged.
func (c *Chain) Seal(event any) (sealed []byte, digest string, err error) {
	members, err := objectMembers(event)
	if err != nil {
		return nil, "", err
	}
	delete(members, c.spec.DigestField)
	if c.spec.PrevField != "" {
		if link := c.Link(); link != "" {
			members[c.spec.PrevField] = json.RawMessage(`"` + link + `"`)
		} else {
			delete(members, c.spec.PrevField)
		}
	}
	canon, err := canonicalMembers(members)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(canon)
	digest = c.spec.encode(sum)
	members[c.spec.DigestField] = json.RawMessage(`"` + digest + `"`)
	sealed, err = canonicalMembers(members)
	if err != nil {
		return nil, "", err
	}
	c.head, c.hasHead = sum, true
	c.n++
	return sealed, digest, nil
}

// Verify checks that event is the next object of the chain: its DigestField
// recomputes and its PrevField equals [Chain.Link] (absent when the link is
// empty). On success the head advances to event's digest; on error the
// chain is unchanged. Errors are *contracts.Error: TALOS_INVALID_INPUT for
// malformed JSON, TGA_HASH_CHAIN_BROKEN ([ErrChainBroken]) for a digest or
// link mismatch.
func (c *Chain) Verify(event any) error {
	sum, err := c.check(event)
	if err != nil {
		return err
	}
	c.head, c.hasHead = sum, true
	c.n++
	return nil
}

func (c *Chain) check(event any) ([sha256.Size]byte, error) {
	var zero [sha256.Size]byte
	members, err := objectMembers(event)
	if err != nil {
		return zero, err
	}
	claimed, err := stringMember(members, c.spec.DigestField)
	if err != nil {
		return zero, err
	}
	want, ok := c.spec.decodeDigest(claimed)
	if !ok {
		return zero, c.broken("digest field " + c.spec.DigestField + " is not a SHA-256 digest")
	}
	delete(members, c.spec.DigestField)
	if c.spec.PrevField != "" {
		if err := c.checkLink(members); err != nil {
			return zero, err
		}
	}
	canon, err := canonicalMembers(members)
	if err != nil {
		return zero, err
	}
	got := sha256.Sum256(canon)
	if got != want {
		return zero, c.broken(c.spec.DigestField + " does not match the object")
	}
	return got, nil
}

func (c *Chain) checkLink(members map[string]json.RawMessage) error {
	raw, present := members[c.spec.PrevField]
	var expect [sha256.Size]byte
	var needed bool
	if c.hasHead {
		expect, needed = c.head, true
	} else {
		expect, needed = c.spec.genesisSum()
	}
	if !needed {
		if present {
			return c.broken("first object carries " + c.spec.PrevField)
		}
		return nil
	}
	if !present {
		return c.broken(c.spec.PrevField + " is missing")
	}
	var text string
	if err := json.Unmarshal(raw, &text); err != nil {
		return c.broken(c.spec.PrevField + " is not a string")
	}
	got, ok := c.spec.decodeDigest(text)
	if !ok || got != expect {
		return c.broken(c.spec.PrevField + " does not link to the previous object")
	}
	return nil
}

func (c *Chain) broken(msg string) error {
	return &contracts.Error{Code: contracts.CodeTGAHashChainBroken,
		Message: "audit: object " + strconv.Itoa(c.n) + ": " + msg}
}

func stringMember(members map[string]json.RawMessage, name string) (string, error) {
	raw, ok := members[name]
	if !ok {
		return "", contracts.New(contracts.CodeInvalidInput, "audit: chain object lacks "+name)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", contracts.New(contracts.CodeInvalidInput, "audit: "+name+" is not a string")
	}
	return s, nil
}

// VerifyChain verifies a whole sequence from its start and returns the head
// digest. On failure the error names the index of the first bad object.
func VerifyChain(spec ChainSpec, events []json.RawMessage) (string, error) {
	c := NewChain(spec)
	for _, ev := range events {
		if err := c.Verify(ev); err != nil {
			return "", err
		}
	}
	return c.Head(), nil
}

// VerifyArtifactDigest checks that the _digest of a TGA artifact recomputes
// (hex or base64url) and returns the digest as written.
func VerifyArtifactDigest(artifact []byte) (string, error) {
	members, err := objectMembers(artifact)
	if err != nil {
		return "", err
	}
	claimed, err := stringMember(members, ArtifactDigest.DigestField)
	if err != nil {
		return "", err
	}
	want, ok := ArtifactDigest.decodeDigest(claimed)
	if !ok {
		return "", contracts.New(contracts.CodeTGAHashChainBroken, "audit: _digest is not a SHA-256 digest")
	}
	delete(members, ArtifactDigest.DigestField)
	canon, err := canonicalMembers(members)
	if err != nil {
		return "", err
	}
	if sha256.Sum256(canon) != want {
		return "", contracts.New(contracts.CodeTGAHashChainBroken, "audit: _digest does not match the artifact")
	}
	return claimed, nil
}

// VerifyArtifactChain checks a TGA trace ActionRequest → SupervisorDecision
// → ToolCall → ToolEffect: each artifact's _digest recomputes, and each link
// field (action_request_digest, supervisor_decision_digest,
// tool_call_digest) equals its parent's _digest as 32 bytes. Any prefix of
// the trace may be given (len 1 to 4).
func VerifyArtifactChain(artifacts ...[]byte) error {
	links := [...]string{"", "action_request_digest", "supervisor_decision_digest", "tool_call_digest"}
	if len(artifacts) == 0 || len(artifacts) > len(links) {
		return contracts.New(contracts.CodeInvalidInput, "audit: a TGA trace has 1 to 4 artifacts")
	}
	var parent [sha256.Size]byte
	for i, a := range artifacts {
		d, err := VerifyArtifactDigest(a)
		if err != nil {
			return err
		}
		if i > 0 {
			members, err := objectMembers(a)
			if err != nil {
				return err
			}
			link, err := stringMember(members, links[i])
			if err != nil {
				return contracts.New(contracts.CodeTGAHashChainBroken, "audit: artifact lacks "+links[i])
			}
			got, ok := ArtifactDigest.decodeDigest(link)
			if !ok || got != parent {
				return contracts.New(contracts.CodeTGAHashChainBroken, "audit: "+links[i]+" does not match the parent artifact")
			}
		}
		parent, _ = ArtifactDigest.decodeDigest(d)
	}
	return nil
}
