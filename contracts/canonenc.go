package contracts

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
)

// A CanonicalEncoder writes RFC 8785 canonical JSON directly from typed
// values, for hot objects whose members the caller knows (tokens, audit
// events, attestation bodies): no intermediate JSON text, no parse, no
// reflection. Its output is byte for byte what [Canonicalize] makes of the
// same value (a fuzz test holds it to jcs.Transform).
//
// Its methods are append-style, like strconv's: each takes the buffer and
// returns it extended, and the encoder keeps only the structure (no
// pointer into the buffer), so writing costs no GC write barriers:
//
//	var e contracts.CanonicalEncoder
//	b = e.BeginObject(b)
//	b = e.Key(b, "exp")
//	b = e.Int(b, 1767504000)
//	b = e.EndObject(b)
//	b, err := e.Finish(b)
//
// Pass every call the buffer the previous call returned.
//
// The caller writes members in canonical order; the encoder checks it:
// within an object each key must sort after the previous one by UTF-16
// code units (RFC 8785 §3.2.3), so a key out of order or repeated is an
// error, never non-canonical output. The encoder also rejects, like
// Canonicalize: invalid UTF-8 in strings and keys, integers and integral
// floats outside ±[MaxSafeInteger], NaN and infinities, nesting deeper
// than [MaxJSONDepth] and output longer than [MaxJSONSize]. With Strict
// set it also rejects null and non-integral numbers, as
// [CanonicalizeStrict] does.
//
// Misuse of the structure (a value where a key is due, an unbalanced End,
// a second top-level value) is an error as well. The first error sticks:
// later calls append nothing, and [CanonicalEncoder.Finish] returns it, a
// *Error with code TALOS_INVALID_INPUT, with the buffer cut back to where
// the value started.
//
// The zero value is ready to use; [CanonicalEncoder.Reset] makes an
// encoder ready for the next value. A CanonicalEncoder is not safe for
// concurrent use. It is about 600 bytes: keep one on the stack or reuse it.
type CanonicalEncoder struct {
	// Strict applies the rules of CanonicalizeStrict (no null, integers
	// only).
	Strict bool

	err   error
	start int // len(b) at the first write
	depth int // open objects and arrays
	began bool
	done  bool
	// Per open container d (bit d of each mask): object or array, a member
	// written, a key written whose value is due, the previous key needed
	// escapes.
	object, members, keyed, escaped uint64
	// prev[d] locates the previous key of object d in the buffer (its
	// quoted form without the quotes); a key that needed escapes is kept
	// in prevEsc instead, allocated on first use.
	prev    [MaxJSONDepth]keySpan
	prevEsc *[MaxJSONDepth]string
}

type keySpan struct{ at, end int32 }

// Reset discards any state and error (Strict is kept).
func (e *CanonicalEncoder) Reset() {
	e.err, e.start, e.depth, e.began, e.done = nil, 0, 0, false, false
}

// Finish returns b, holding the encoded value, or the first error with b
// cut back to where the value started. It fails if the value is
// incomplete (a container left open, no value written).
func (e *CanonicalEncoder) Finish(b []byte) ([]byte, error) {
	if e.err == nil && (e.depth != 0 || !e.done) {
		e.fail("incomplete value")
	}
	if e.err != nil {
		if e.began && e.start <= len(b) {
			return b[:e.start], e.err
		}
		return b, e.err
	}
	return b, nil
}

// Err returns the first error, if any.
func (e *CanonicalEncoder) Err() error { return e.err }

func (e *CanonicalEncoder) fail(msg string) {
	if e.err == nil {
		e.err = jsonError(msg)
	}
}

// value prepares b for one value: a separator inside an array, nothing
// after a key. ok is false (and an error recorded) where no value may go.
func (e *CanonicalEncoder) value(b []byte) (_ []byte, ok bool) {
	if e.err != nil {
		return b, false
	}
	if e.depth == 0 {
		if e.done {
			e.fail("more than one top-level value")
			return b, false
		}
		if !e.began {
			e.began, e.start = true, len(b)
		}
		return b, true
	}
	bit := uint64(1) << (e.depth - 1)
	if e.object&bit != 0 {
		if e.keyed&bit == 0 {
			e.fail("object member without a key")
			return b, false
		}
		e.keyed &^= bit
		return b, true
	}
	if e.members&bit != 0 {
		b = append(b, ',')
	}
	e.members |= bit
	return b, true
}

// prevLess reports whether the previous key of object d sorts before k.
func (e *CanonicalEncoder) prevLess(b []byte, d int, k string) bool {
	if e.escaped&(1<<d) != 0 {
		return LessUTF16(e.prevEsc[d], k)
	}
	p := e.prev[d]
	if int(p.end) > len(b) {
		return false // not the buffer the key was written to: misuse
	}
	return lessUTF16Bytes(b[p.at:p.end], k)
}

// wrote finishes one value.
func (e *CanonicalEncoder) wrote(b []byte) {
	if e.depth == 0 {
		e.done = true
	}
	if len(b)-e.start > MaxJSONSize {
		e.fail("output too large")
	}
}

// BeginObject opens an object.
func (e *CanonicalEncoder) BeginObject(b []byte) []byte { return e.begin(b, true, '{') }

// BeginArray opens an array.
func (e *CanonicalEncoder) BeginArray(b []byte) []byte { return e.begin(b, false, '[') }

func (e *CanonicalEncoder) begin(b []byte, object bool, c byte) []byte {
	b, ok := e.value(b)
	if !ok {
		return b
	}
	if e.depth == MaxJSONDepth {
		e.fail("nesting too deep")
		return b
	}
	bit := uint64(1) << e.depth
	e.members &^= bit
	e.keyed &^= bit
	e.escaped &^= bit
	if object {
		e.object |= bit
	} else {
		e.object &^= bit
	}
	e.depth++
	return append(b, c)
}

// EndObject closes the innermost container, which must be an object whose
// last key has its value.
func (e *CanonicalEncoder) EndObject(b []byte) []byte { return e.end(b, true, '}') }

// EndArray closes the innermost container, which must be an array.
func (e *CanonicalEncoder) EndArray(b []byte) []byte { return e.end(b, false, ']') }

func (e *CanonicalEncoder) end(b []byte, object bool, c byte) []byte {
	if e.err != nil {
		return b
	}
	if e.depth == 0 {
		e.fail("unbalanced end of object or array")
		return b
	}
	bit := uint64(1) << (e.depth - 1)
	if (e.object&bit != 0) != object || e.keyed&bit != 0 {
		e.fail("unbalanced end of object or array")
		return b
	}
	e.depth--
	b = append(b, c)
	e.wrote(b)
	return b
}

// Key writes an object key. It must sort after the previous key of the
// same object by UTF-16 code units.
func (e *CanonicalEncoder) Key(b []byte, k string) []byte {
	if e.err != nil {
		return b
	}
	d := e.depth - 1
	if d < 0 || e.object&(1<<d) == 0 || e.keyed&(1<<d) != 0 {
		e.fail("key outside an object or without a value")
		return b
	}
	bit := uint64(1) << d
	if e.members&bit != 0 {
		if !e.prevLess(b, d, k) {
			e.fail("object keys out of canonical order or repeated")
			return b
		}
		b = append(b, ',')
	}
	at := len(b) + 1
	b, ok := appendQuoted(b, k)
	if !ok {
		e.fail("key is not valid UTF-8")
		return b
	}
	e.members |= bit
	e.keyed |= bit
	end := len(b) - 1
	if end-at == len(k) && end <= math.MaxInt32 {
		e.escaped &^= bit
		e.prev[d] = keySpan{int32(at), int32(end)}
	} else {
		if e.prevEsc == nil {
			e.prevEsc = new([MaxJSONDepth]string)
		}
		e.escaped |= bit
		e.prevEsc[d] = k
	}
	return append(b, ':')
}

// A Name is an object key checked and quoted once, for keys known in
// advance (a type's member names): [CanonicalEncoder.Name] writes it
// without scanning it again. The zero Name is the empty key.
type Name struct {
	raw    string
	quoted string // "raw": (with escapes where needed)
	plain  bool   // quoted is raw between quotes, no escapes
}

// NewName checks and quotes k. It fails with TALOS_INVALID_INPUT if k is
// not valid UTF-8.
func NewName(k string) (Name, error) {
	q, ok := appendQuoted(make([]byte, 0, len(k)+3), k)
	if !ok {
		return Name{}, jsonError("key is not valid UTF-8")
	}
	q = append(q, ':')
	return Name{raw: k, quoted: string(q), plain: len(q) == len(k)+3}, nil
}

// MustName is NewName for constant keys; it panics if k is not valid
// UTF-8.
func MustName(k string) Name {
	n, err := NewName(k)
	if err != nil {
		panic("contracts: MustName: " + err.Error())
	}
	return n
}

// String returns the key.
func (n Name) String() string { return n.raw }

// Name writes an object key made with NewName or MustName. Like Key, it
// must sort after the previous key of the same object.
func (e *CanonicalEncoder) Name(b []byte, n Name) []byte {
	if e.err != nil {
		return b
	}
	d := e.depth - 1
	if d < 0 || e.object&(1<<d) == 0 || e.keyed&(1<<d) != 0 {
		e.fail("key outside an object or without a value")
		return b
	}
	if n.quoted == "" {
		n = MustName("") // the zero Name
	}
	bit := uint64(1) << d
	if e.members&bit != 0 {
		if !e.prevLess(b, d, n.raw) {
			e.fail("object keys out of canonical order or repeated")
			return b
		}
		b = append(b, ',')
	}
	e.members |= bit
	e.keyed |= bit
	at := len(b) + 1
	b = append(b, n.quoted...)
	if end := len(b) - 2; n.plain && end <= math.MaxInt32 {
		e.escaped &^= bit
		e.prev[d] = keySpan{int32(at), int32(end)}
	} else {
		if e.prevEsc == nil {
			e.prevEsc = new([MaxJSONDepth]string)
		}
		e.escaped |= bit
		e.prevEsc[d] = n.raw
	}
	return b
}

// String writes a string.
func (e *CanonicalEncoder) String(b []byte, s string) []byte {
	b, ok := e.value(b)
	if !ok {
		return b
	}
	if b, ok = appendQuoted(b, s); !ok {
		e.fail("string is not valid UTF-8")
		return b
	}
	e.wrote(b)
	return b
}

// Int writes an integer; it must be within ±MaxSafeInteger.
func (e *CanonicalEncoder) Int(b []byte, n int64) []byte {
	b, ok := e.value(b)
	if !ok {
		return b
	}
	if n > MaxSafeInteger || n < -MaxSafeInteger {
		e.fail("integer outside ±(2^53−1)")
		return b
	}
	b = strconv.AppendInt(b, n, 10)
	e.wrote(b)
	return b
}

// Uint writes an unsigned integer; it must be at most MaxSafeInteger.
func (e *CanonicalEncoder) Uint(b []byte, n uint64) []byte {
	b, ok := e.value(b)
	if !ok {
		return b
	}
	if n > MaxSafeInteger {
		e.fail("integer outside ±(2^53−1)")
		return b
	}
	b = strconv.AppendUint(b, n, 10)
	e.wrote(b)
	return b
}

// Float writes a number in the ECMAScript form RFC 8785 requires (an
// integral value as an integer). NaN, infinities and integral values
// beyond ±MaxSafeInteger are errors; in Strict mode so is any value with a
// fraction.
func (e *CanonicalEncoder) Float(b []byte, x float64) []byte {
	b, ok := e.value(b)
	if !ok {
		return b
	}
	if b, ok = appendFloat(b, x, e.Strict); !ok {
		e.fail("number not finite, outside ±(2^53−1) or not an integer in a signed object")
		return b
	}
	e.wrote(b)
	return b
}

// Number writes the JSON number literal lit (as encoding/json's
// json.Number holds it) in canonical form, under Canonicalize's rules: a
// malformed literal, an integer beyond ±MaxSafeInteger in any notation or
// a value out of range is an error, and so in Strict mode is a literal
// with a fraction or exponent.
func (e *CanonicalEncoder) Number(b []byte, lit string) []byte {
	b, ok := e.value(b)
	if !ok {
		return b
	}
	if !validNumber(lit) {
		e.fail("not a JSON number")
		return b
	}
	if !containsAny(lit, ".eE") {
		n, err := strconv.ParseInt(lit, 10, 64)
		if err != nil || n > MaxSafeInteger || n < -MaxSafeInteger {
			e.fail("integer outside ±(2^53−1)")
			return b
		}
		b = strconv.AppendInt(b, n, 10) // "-0" becomes "0"
		e.wrote(b)
		return b
	}
	if e.Strict {
		e.fail("non-integer number in a signed object")
		return b
	}
	x, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		e.fail("number out of range")
		return b
	}
	if b, ok = appendFloat(b, x, false); !ok {
		e.fail("integer outside ±(2^53−1)")
		return b
	}
	e.wrote(b)
	return b
}

// Bool writes true or false.
func (e *CanonicalEncoder) Bool(b []byte, v bool) []byte {
	b, ok := e.value(b)
	if !ok {
		return b
	}
	b = strconv.AppendBool(b, v)
	e.wrote(b)
	return b
}

// Null writes null; in Strict mode it is an error.
func (e *CanonicalEncoder) Null(b []byte) []byte {
	b, ok := e.value(b)
	if !ok {
		return b
	}
	if e.Strict {
		e.fail("null is not allowed in a signed object")
		return b
	}
	b = append(b, "null"...)
	e.wrote(b)
	return b
}

// AppendCanonicalString appends s as an RFC 8785 string (quoted; only ",
// \ and control characters escaped, the short escapes where JSON has
// them, other text as UTF-8). It fails with TALOS_INVALID_INPUT if s is not
// valid UTF-8 (which includes UTF-8-encoded surrogates); dst is then
// returned unchanged.
func AppendCanonicalString(dst []byte, s string) ([]byte, error) {
	out, ok := appendQuoted(dst, s)
	if !ok {
		return dst, jsonError("string is not valid UTF-8")
	}
	return out, nil
}

// AppendCanonicalFloat appends x in RFC 8785's ECMAScript number form, an
// integral value as an integer. It fails with TALOS_INVALID_INPUT for NaN,
// infinities and integral values beyond ±MaxSafeInteger; dst is then
// returned unchanged.
func AppendCanonicalFloat(dst []byte, x float64) ([]byte, error) {
	out, ok := appendFloat(dst, x, false)
	if !ok {
		return dst, jsonError("number not finite or outside ±(2^53−1)")
	}
	return out, nil
}

// SortKeysUTF16 sorts keys by UTF-16 code units, the member order of
// RFC 8785. It is an insertion sort: meant for the few keys of one object.
func SortKeysUTF16(keys []string) {
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && LessUTF16(keys[j], keys[j-1]); j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
}

// LessUTF16 reports whether a sorts before b by UTF-16 code units
// (RFC 8785 §3.2.3). For strings without supplementary-plane characters
// this is byte order. Invalid UTF-8 compares as U+FFFD.
func LessUTF16(a, b string) bool {
	// Equal bytes up to the first difference compare equal in UTF-16 too;
	// only the rune at the first differing byte decides.
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	if i == len(a) || i == len(b) {
		return len(a) < len(b)
	}
	if a[i] < utf8.RuneSelf && b[i] < utf8.RuneSelf {
		return a[i] < b[i]
	}
	// Back up to the start of the rune holding byte i.
	for i > 0 && !utf8.RuneStart(a[i]) {
		i--
	}
	ra, _ := utf8.DecodeRuneInString(a[i:])
	rb, _ := utf8.DecodeRuneInString(b[i:])
	return utf16Order(ra) < utf16Order(rb)
}

// lessUTF16Bytes is LessUTF16 with a as bytes.
func lessUTF16Bytes(a []byte, b string) bool {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	if i == len(a) || i == len(b) {
		return len(a) < len(b)
	}
	if a[i] < utf8.RuneSelf && b[i] < utf8.RuneSelf {
		return a[i] < b[i]
	}
	for i > 0 && !utf8.RuneStart(a[i]) {
		i--
	}
	ra, _ := utf8.DecodeRune(a[i:])
	rb, _ := utf8.DecodeRuneInString(b[i:])
	return utf16Order(ra) < utf16Order(rb)
}

// utf16Order maps a rune to a value ordered like its UTF-16 code units:
// supplementary-plane runes (surrogate pairs, first unit 0xD800–0xDBFF)
// sort after U+D7FF and before U+E000.
func utf16Order(r rune) uint32 {
	switch {
	case r < 0xD800:
		return uint32(r)
	case r >= 0x10000:
		return 0xD800 + uint32(r-0x10000)
	default:
		return uint32(r) + 0x100000
	}
}

// appendQuoted writes s as an RFC 8785 string; ok is false for invalid
// UTF-8.
func appendQuoted(b []byte, s string) (_ []byte, ok bool) {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return b, false
			}
			i += size
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"':
			b = append(b, `\"`...)
		case '\\':
			b = append(b, `\\`...)
		case '\b':
			b = append(b, `\b`...)
		case '\t':
			b = append(b, `\t`...)
		case '\n':
			b = append(b, `\n`...)
		case '\f':
			b = append(b, `\f`...)
		case '\r':
			b = append(b, `\r`...)
		default:
			const hexDigits = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"'), true
}

func appendFloat(b []byte, x float64, strict bool) ([]byte, bool) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return b, false
	}
	if x == math.Trunc(x) {
		if math.Abs(x) > MaxSafeInteger {
			return b, false
		}
		return strconv.AppendInt(b, int64(x), 10), true // -0 becomes 0
	}
	if strict {
		return b, false
	}
	s, err := jcs.NumberToJSON(x)
	if err != nil {
		return b, false
	}
	return append(b, s...), true
}

// validNumber reports whether s is a JSON number (RFC 8259 §6).
func validNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	return i == len(s)
}

func containsAny(s, chars string) bool {
	for i := 0; i < len(s); i++ {
		for j := 0; j < len(chars); j++ {
			if s[i] == chars[j] {
				return true
			}
		}
	}
	return false
}
