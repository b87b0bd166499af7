package ratchet

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"

	"github.com/talosgo/talos/contracts"
)

// A Record is what one peer keeps for another: its current session and up
// to MaxArchivedSessions earlier ones (libsignal's SessionRecord). When
// either side sets up a new session, messages still in flight on the old
// one keep opening through the archive; archiving more drops the oldest.
//
// A Record is not safe for concurrent use; callers serialize its methods.
type Record struct {
	_ [0]func() // not comparable
	*recordRef
}

type recordRef struct{ *recordState }

type recordState struct {
	current  *Session
	archived []*Session // newest first
}

// NewRecord returns a record whose current session is s (nil for none).
func NewRecord(s *Session) *Record {
	return &Record{recordRef: &recordRef{&recordState{current: s}}}
}

// Current returns the current session, or nil.
func (r *Record) Current() *Session { return r.current }

// Archived reports how many earlier sessions the record keeps.
func (r *Record) Archived() int { return len(r.archived) }

// Promote makes s the current session and archives the previous one,
// dropping (and destroying) the oldest beyond MaxArchivedSessions.
func (r *Record) Promote(s *Session) {
	if r.current != nil && r.current != s {
		r.archive(r.current)
	}
	r.current = s
}

func (r *Record) archive(s *Session) {
	r.archived = append(r.archived, nil)
	copy(r.archived[1:], r.archived)
	r.archived[0] = s
	for len(r.archived) > MaxArchivedSessions {
		last := len(r.archived) - 1
		r.archived[last].Destroy()
		r.archived[last] = nil
		r.archived = r.archived[:last]
	}
}

// Encrypt encrypts with the current session; it fails with
// TALOS_INVALID_INPUT when there is none.
func (r *Record) Encrypt(plaintext []byte) ([]byte, error) {
	if r.current == nil {
		return nil, errInput("record has no current session")
	}
	return r.current.Encrypt(plaintext)
}

// Decrypt tries the current session, then the archived ones, newest first.
// A message that opens on an archived session makes it current again (the
// peer is still using it), as libsignal does. Each try is transactional,
// so a message that opens nowhere changes nothing; the error is the
// current session's (or ErrAuthFailed when there is none).
func (r *Record) Decrypt(wire []byte) ([]byte, error) {
	pt, err := r.decrypt(wire)
	if err != nil {
		return nil, countFailure(err)
	}
	return pt, nil
}

func (r *Record) decrypt(wire []byte) ([]byte, error) {
	var first error
	if r.current != nil {
		pt, err := r.current.decrypt(wire)
		if err == nil {
			return pt, nil
		}
		if contracts.CodeOf(err) == contracts.CodeRatchetInvalidHeader {
			return nil, err // does not parse: no other session can open it
		}
		first = err
	}
	for i, s := range r.archived {
		pt, err := s.decrypt(wire)
		if err != nil {
			continue
		}
		r.archived = append(r.archived[:i], r.archived[i+1:]...)
		r.Promote(s)
		return pt, nil
	}
	if first == nil {
		first = errAuth()
	}
	return nil, first
}

// Destroy destroys every session of the record.
func (r *Record) Destroy() {
	if r.current != nil {
		r.current.Destroy()
	}
	for _, s := range r.archived {
		s.Destroy()
	}
	r.current, r.archived = nil, nil
}

// Serialized record, version 1 (library-private; always sealed):
//
//	'T' 'C' 0x01 hasCurrent(0|1) count(uint8)
//	[current] count × archived, each: len uint32 ‖ session state
const recordVersion = 1

const sealDomainRecord = "talos.ratchet.record.v1\x00"

// MarshalSealed serializes the record (every session's state, versioned)
// and seals it with sealer, bound to aad, like Session.MarshalSealed.
func (r *Record) MarshalSealed(sealer Sealer, aad []byte) ([]byte, error) {
	if sealer == nil {
		return nil, errInput("nil Sealer")
	}
	pt := []byte{'T', 'C', recordVersion, 0, byte(len(r.archived))}
	all := r.archived
	if r.current != nil {
		pt[3] = 1
		all = append([]*Session{r.current}, r.archived...)
	}
	for _, s := range all {
		at := len(pt)
		pt = append(pt, 0, 0, 0, 0)
		pt = s.appendState(pt)
		binary.BigEndian.PutUint32(pt[at:], uint32(len(pt)-at-4))
	}
	defer clear(pt)
	return sealer.Seal(pt, append([]byte(sealDomainRecord), aad...))
}

// UnmarshalRecordSealed opens a record sealed by Record.MarshalSealed with
// the same aad; every session is configured by cfg. It fails with
// TALOS_CRYPTO_ERROR if the blob does not open or its content is invalid.
func UnmarshalRecordSealed(sealer Sealer, sealed, aad []byte, cfg Config) (*Record, error) {
	if sealer == nil {
		return nil, errInput("nil Sealer")
	}
	pt, err := sealer.Open(sealed, append([]byte(sealDomainRecord), aad...))
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeCryptoError, "ratchet: sealed record does not open", err)
	}
	defer clear(pt)
	return parseRecord(pt, cfg)
}

func parseRecord(pt []byte, cfg Config) (*Record, error) {
	if len(pt) < 5 || len(pt) > (MaxArchivedSessions+1)*maxStateSize || pt[0] != 'T' || pt[1] != 'C' {
		return nil, errState("bad record encoding")
	}
	if pt[2] != recordVersion {
		return nil, errState("unsupported record version")
	}
	if pt[3] > 1 || int(pt[4]) > MaxArchivedSessions {
		return nil, errState("bad record header")
	}
	n := int(pt[3]) + int(pt[4])
	p := pt[5:]
	sessions := make([]*Session, 0, n)
	for range n {
		if len(p) < 4 {
			return nil, errState("truncated record")
		}
		l := binary.BigEndian.Uint32(p)
		if uint64(l) > uint64(len(p)-4) {
			return nil, errState("truncated record")
		}
		s, err := parseState(p[4:4+l], cfg)
		if err != nil {
			for _, s := range sessions {
				s.Destroy()
			}
			return nil, err
		}
		sessions = append(sessions, s)
		p = p[4+l:]
	}
	if len(p) != 0 {
		for _, s := range sessions {
			s.Destroy()
		}
		return nil, errState("trailing bytes after record")
	}
	r := NewRecord(nil)
	if pt[3] == 1 {
		r.current, sessions = sessions[0], sessions[1:]
	}
	if len(sessions) > 0 {
		r.archived = sessions
	}
	return r, nil
}

// String redacts the record's secrets.
func (r *Record) String() string {
	if r == nil {
		return "ratchet.Record(nil)"
	}
	return "ratchet.Record(redacted)"
}

// GoString redacts the record's secrets.
func (r *Record) GoString() string { return r.String() }

// Format implements fmt.Formatter: every verb prints String.
func (r *Record) Format(f fmt.State, _ rune) { io.WriteString(f, r.String()) }

// LogValue implements slog.LogValuer with public facts only.
func (r *Record) LogValue() slog.Value {
	if r == nil {
		return slog.StringValue("ratchet.Record(nil)")
	}
	return slog.GroupValue(
		slog.String("type", "ratchet.Record"),
		slog.Bool("current", r.current != nil),
		slog.Int("archived", len(r.archived)),
	)
}
