package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

// Types that hold key material (the Redactor's HMAC key, the EventBuilder's
// IP-hash key, the private keys behind note signers and witnesses, and the
// configs that carry them) print redacted for every fmt verb (Format), in
// String, GoString and slog (LogValue). The configs with exported key
// fields also redact in encoding/json.
//
// fmt calls no method of a value it reaches through an unexported field,
// and for %s or %q it prints a pointer found there dereferenced: a struct
// holding a *Redactor, *EventBuilder, *Log, *Witness, a note signer or one
// of these configs in an UNEXPORTED field must not be printed with fmt (an
// exported field is safe: fmt then calls Format).

const redacted = "[redacted]"

func writeString(f fmt.State, s string) { io.WriteString(f, s) }

// String describes the redactor without its key.
func (r *Redactor) String() string {
	if r == nil {
		return "audit.Redactor(nil)"
	}
	return "audit.Redactor(key_id=" + strconv.Quote(r.keyID) + " rules=" + strconv.Itoa(len(r.rules)+btoi(r.allMeta != nil)) + ")"
}

// GoString returns String, so %#v shows no key.
func (r *Redactor) GoString() string { return r.String() }

// Format implements fmt.Formatter: every verb prints String.
func (r *Redactor) Format(f fmt.State, _ rune) { writeString(f, r.String()) }

// LogValue implements slog.LogValuer without the key.
func (r *Redactor) LogValue() slog.Value { return slog.StringValue(r.String()) }

// String describes the builder without its IP-hash key.
func (b *EventBuilder) String() string {
	if b == nil {
		return "audit.EventBuilder(nil)"
	}
	return "audit.EventBuilder(ip_hash_key_id=" + strconv.Quote(b.cfg.IPHashKeyID) + " surfaces=" + strconv.Itoa(len(b.allow)) + ")"
}

// GoString returns String, so %#v shows no key.
func (b *EventBuilder) GoString() string { return b.String() }

// Format implements fmt.Formatter: every verb prints String.
func (b *EventBuilder) Format(f fmt.State, _ rune) { writeString(f, b.String()) }

// LogValue implements slog.LogValuer without the key.
func (b *EventBuilder) LogValue() slog.Value { return slog.StringValue(b.String()) }

func keyText(k []byte) string {
	if k == nil {
		return "none"
	}
	return redacted
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// String describes the config with IPHashKey redacted.
func (c BuilderConfig) String() string {
	return "audit.BuilderConfig(IPHashKey=" + keyText(c.IPHashKey) + " IPHashKeyID=" + strconv.Quote(c.IPHashKeyID) +
		" surfaces=" + strconv.Itoa(len(c.MetaAllowlist)) + " RawPathUnsafe=" + strconv.FormatBool(c.RawPathUnsafe) + ")"
}

// GoString returns String, so %#v shows no key.
func (c BuilderConfig) GoString() string { return c.String() }

// Format implements fmt.Formatter: every verb prints String.
func (c BuilderConfig) Format(f fmt.State, _ rune) { writeString(f, c.String()) }

// LogValue implements slog.LogValuer with IPHashKey redacted.
func (c BuilderConfig) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalJSON encodes the data fields with IPHashKey replaced by
// "[redacted]" (omitted when nil) and without the function fields.
func (c BuilderConfig) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		IPHashKey     string              `json:",omitempty"`
		IPHashKeyID   string              `json:",omitempty"`
		MetaAllowlist map[string][]string `json:",omitempty"`
		Markers       MarkerPolicy
		RawPathUnsafe bool
	}{keyJSON(c.IPHashKey), c.IPHashKeyID, c.MetaAllowlist, c.Markers, c.RawPathUnsafe})
}

func keyJSON(k []byte) string {
	if k == nil {
		return ""
	}
	return redacted
}

// String describes the config with HMACKey redacted.
func (c RedactionConfig) String() string {
	return "audit.RedactionConfig(rules=" + strconv.Itoa(len(c.Rules)) + " HMACKey=" + keyText(c.HMACKey) +
		" HMACKeyID=" + strconv.Quote(c.HMACKeyID) + ")"
}

// GoString returns String, so %#v shows no key.
func (c RedactionConfig) GoString() string { return c.String() }

// Format implements fmt.Formatter: every verb prints String.
func (c RedactionConfig) Format(f fmt.State, _ rune) { writeString(f, c.String()) }

// LogValue implements slog.LogValuer with HMACKey redacted.
func (c RedactionConfig) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalJSON encodes the config with HMACKey replaced by "[redacted]"
// (omitted when nil).
func (c RedactionConfig) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Rules     []RedactionRule
		HMACKey   string `json:",omitempty"`
		HMACKeyID string `json:",omitempty"`
		Markers   MarkerPolicy
	}{c.Rules, keyJSON(c.HMACKey), c.HMACKeyID, c.Markers})
}

// String describes the config without its signer.
func (c WitnessConfig) String() string {
	return "audit.WitnessConfig(" + strconv.Quote(c.Name) + " logs=" + strconv.Itoa(len(c.Logs)) + ")"
}

// GoString returns String, so %#v shows no key.
func (c WitnessConfig) GoString() string { return c.String() }

// Format implements fmt.Formatter: every verb prints String, so a Signer
// that is an ed25519.PrivateKey is never printed.
func (c WitnessConfig) Format(f fmt.State, _ rune) { writeString(f, c.String()) }

// LogValue implements slog.LogValuer without the signer.
func (c WitnessConfig) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalJSON encodes the name and the followed log origins only.
func (c WitnessConfig) MarshalJSON() ([]byte, error) {
	logs := make([]string, 0, len(c.Logs))
	for _, v := range c.Logs {
		logs = append(logs, v.Name())
	}
	return json.Marshal(struct {
		Name string
		Logs []string
	}{c.Name, logs})
}

// String describes the witness by its key name.
func (w *Witness) String() string {
	if w == nil {
		return "audit.Witness(nil)"
	}
	return "audit.Witness(" + strconv.Quote(w.signer.Name()) + " logs=" + strconv.Itoa(len(w.logs)) + ")"
}

// GoString returns String, so %#v shows no key.
func (w *Witness) GoString() string { return w.String() }

// Format implements fmt.Formatter: every verb prints String.
func (w *Witness) Format(f fmt.State, _ rune) { writeString(f, w.String()) }

// LogValue implements slog.LogValuer without the key.
func (w *Witness) LogValue() slog.Value { return slog.StringValue(w.String()) }

// String describes the log by its origin.
func (l *Log) String() string {
	if l == nil {
		return "audit.Log(nil)"
	}
	return "audit.Log(" + strconv.Quote(l.Origin()) + ")"
}

// GoString returns String, so %#v shows no key.
func (l *Log) GoString() string { return l.String() }

// Format implements fmt.Formatter: every verb prints String.
func (l *Log) Format(f fmt.State, _ rune) { writeString(f, l.String()) }

// LogValue implements slog.LogValuer without the key.
func (l *Log) LogValue() slog.Value { return slog.StringValue(l.String()) }

func (s *noteSigner) String() string {
	return "audit.NoteSigner(" + strconv.Quote(s.name) + " " + strconv.FormatUint(uint64(s.hash), 16) + ")"
}
func (s *noteSigner) GoString() string           { return s.String() }
func (s *noteSigner) Format(f fmt.State, _ rune) { writeString(f, s.String()) }
func (s *noteSigner) LogValue() slog.Value       { return slog.StringValue(s.String()) }

func (c *cosigner) String() string {
	return "audit.Cosigner(" + strconv.Quote(c.name) + " " + strconv.FormatUint(uint64(c.hash), 16) + ")"
}
func (c *cosigner) GoString() string           { return c.String() }
func (c *cosigner) Format(f fmt.State, _ rune) { writeString(f, c.String()) }
func (c *cosigner) LogValue() slog.Value       { return slog.StringValue(c.String()) }

// MarshalJSON encodes the signer's name and key hash only.
func (s *noteSigner) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalJSON encodes the cosigner's name and key hash only.
func (c *cosigner) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }
