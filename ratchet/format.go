package ratchet

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

// hiddenNote: values holding private keys, root, chain or message keys
// (Session, Prekey, Group) format as redacted text for every fmt verb, in
// slog and in encoding/json. fmt.Formatter takes precedence over the default
// printing of struct fields (which would show the key arrays for %v, %+v,
// %d, %x, ...), and their fields are unexported, so encoding/json writes {}.
//
// fmt does not call methods of values it reaches through unexported fields,
// and for a verb that does not fit a pointer (%s, %q) it prints the pointer
// again with %v at depth 0, which dereferences one level. A *Session in an
// unexported field of the caller's struct printed with %s would therefore
// show the Session's fields. So each of these types holds its state behind
// two pointers (Session → *sessionRef → *sessionState): after that one
// dereference the next pointer prints as an address. The same holds for
// SessionChannel and GroupChannel, which only hold pointers to them.

// String redacts the session's secrets.
func (s *Session) String() string {
	if s == nil {
		return "ratchet.Session(nil)"
	}
	return "ratchet.Session(redacted)"
}

// GoString redacts the session's secrets.
func (s *Session) GoString() string { return s.String() }

// Format implements fmt.Formatter: every verb, flag and width prints
// String, so no verb (%x, %d, %+v, ...) can reach the keys.
func (s *Session) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// LogValue implements slog.LogValuer with public facts only.
func (s *Session) LogValue() slog.Value {
	if s == nil {
		return slog.StringValue("ratchet.Session(nil)")
	}
	return slog.GroupValue(
		slog.String("type", "ratchet.Session"),
		slog.Int("skipped_keys", len(s.skipped)),
	)
}

// String redacts the private key.
func (p *Prekey) String() string {
	if p == nil {
		return "ratchet.Prekey(nil)"
	}
	return "ratchet.Prekey(redacted)"
}

// GoString redacts the private key.
func (p *Prekey) GoString() string { return p.String() }

// Format implements fmt.Formatter: every verb prints String.
func (p *Prekey) Format(f fmt.State, _ rune) { io.WriteString(f, p.String()) }

// LogValue implements slog.LogValuer without the private key.
func (p *Prekey) LogValue() slog.Value {
	if p == nil {
		return slog.StringValue("ratchet.Prekey(nil)")
	}
	return slog.StringValue(p.String())
}

// String describes the group by its id and owner; sender keys and
// pairwise sessions are never shown.
func (g *Group) String() string {
	if g == nil {
		return "ratchet.Group(nil)"
	}
	return "ratchet.Group(" + strconv.Quote(g.id) + " owner=" + g.owner.String() + ")"
}

// GoString returns String, so %#v shows no key.
func (g *Group) GoString() string { return g.String() }

// Format implements fmt.Formatter: every verb prints String.
func (g *Group) Format(f fmt.State, _ rune) { io.WriteString(f, g.String()) }

// LogValue implements slog.LogValuer with the public fields only.
func (g *Group) LogValue() slog.Value {
	if g == nil {
		return slog.StringValue("ratchet.Group(nil)")
	}
	return slog.GroupValue(
		slog.String("id", g.id),
		slog.String("owner", g.owner.String()),
		slog.String("self", g.self.DID().String()),
	)
}
