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
// later calls do nothing, and [CanonicalEncoder.Bytes] returns it, a
// *Error with code TALOS_INVALID_INPUT.
//
// The zero value is ready to use and appends to a nil buffer; [CanonicalEncoder.Reset]
// sets the buffer to append to. A CanonicalEncoder is not safe for
// concurrent use. It is about 600 bytes: keep one on the stack or reuse it.
type CanonicalEncoder struct {
	// Strict applies the rules of CanonicalizeStrict (no null, integers
	// only).
	Strict bool

	buf   []byte
	err   error
	start int // len(buf) when Reset was called
	depth int // open objects and arrays
	done  bool
	// Per open container d (bit d of each mask): object or array, a member
	// written, a key written whose value is due, the previous key needed
	// escapes. No pointers, so writes need no GC write barrier, and it is
	// small to zero.
	object, members, keyed, escaped uint64
	// prev[d] locates the previous key of object d in buf (its quoted
	// form without the quotes); a key that needed escapes is kept in
	// prevEsc instead, allocated on first use.
	prev    [MaxJSONDepth]keySpan
	prevEsc *[MaxJSONDepth]string
}

type keySpan struct{ at, end int32 }

// Reset discards any state and error and makes e append to dst.
func (e *CanonicalEncoder) Reset(dst []byte) {
	e.buf, e.err, e.start, e.depth, e.done = dst, nil, len(dst), 0, false
}

// Bytes returns the buffer with the encoded value appended, or the first
// error. It fails if the value is incomplete (a container left open, no
// value written).
func (e *CanonicalEncoder) Bytes() ([]byte, error) {
	if e.err == nil && (e.depth != 0 || !e.done) {
		e.fail("incomplete value")
	}
	if e.err != nil {
		return e.buf[:e.start], e.err
	}
	return e.buf, nil
}

// Err returns the first error, if any.
func (e *CanonicalEncoder) Err() error { return e.err }

func (e *CanonicalEncoder) fail(msg string) {
	if e.err == nil {
		e.err = jsonError(msg)
	}
}

// value prepares for one value: a separator inside an array, nothing
// after a key. It reports false (and records an error) where no value may
// go.
func (e *CanonicalEncoder) value() bool {
	if e.err != nil {
		return false
	}
	if e.depth == 0 {
		if e.done {
			e.fail("more than one top-level value")
			return false
		}
		return true
	}
	bit := uint64(1) << (e.depth - 1)
	if e.object&bit != 0 {
		if e.keyed&bit == 0 {
			e.fail("object member without a key")
			return false
		}
		e.keyed &^= bit
		return true
	}
	if e.members&bit != 0 {
		e.buf = append(e.buf, ',')
	}
	e.members |= bit
	return true
}

// prevLess reports whether the previous key of object d sorts before k.
func (e *CanonicalEncoder) prevLess(d int, k string) bool {
	if e.escaped&(1<<d) != 0 {
		return LessUTF16(e.prevEsc[d], k)
	}
	p := e.prev[d]
	return lessUTF16Bytes(e.buf[p.at:p.end], k)
}

// wrote finishes one value.
func (e *CanonicalEncoder) wrote() {
	if e.depth == 0 {
		e.done = true
	}
	if len(e.buf)-e.start > MaxJSONSize {
		e.fail("output too large")
	}
}

// BeginObject opens an object.
func (e *CanonicalEncoder) BeginObject() { e.begin(true, '{') }

// BeginArray opens an array.
func (e *CanonicalEncoder) BeginArray() { e.begin(false, '[') }

func (e *CanonicalEncoder) begin(object bool, c byte) {
	if !e.value() {
		return
	}
	if e.depth == MaxJSONDepth {
		e.fail("nesting too deep")
		return
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
	e.buf = append(e.buf, c)
}

// EndObject closes the innermost container, which must be an object whose
// last key has its value.
func (e *CanonicalEncoder) EndObject() { e.end(true, '}') }

// EndArray closes the innermost container, which must be an array.
func (e *CanonicalEncoder) EndArray() { e.end(false, ']') }

func (e *CanonicalEncoder) end(object bool, c byte) {
	if e.err != nil {
		return
	}
	if e.depth == 0 {
		e.fail("unbalanced end of object or array")
		return
	}
	bit := uint64(1) << (e.depth - 1)
	if (e.object&bit != 0) != object || e.keyed&bit != 0 {
		e.fail("unbalanced end of object or array")
		return
	}
	e.depth--
	e.buf = append(e.buf, c)
	e.wrote()
}

// Key writes an object key. It must sort after the previous key of the
// same object by UTF-16 code units.
func (e *CanonicalEncoder) Key(k string) {
	if e.err != nil {
		return
	}
	d := e.depth - 1
	if d < 0 || e.object&(1<<d) == 0 || e.keyed&(1<<d) != 0 {
		e.fail("key outside an object or without a value")
		return
	}
	bit := uint64(1) << d
	b := e.buf
	if e.members&bit != 0 {
		if !e.prevLess(d, k) {
			e.fail("object keys out of canonical order or repeated")
			return
		}
		b = append(b, ',')
	}
	at := len(b) + 1
	b, ok := appendQuoted(b, k)
	if !ok {
		e.fail("key is not valid UTF-8")
		return
	}
	e.members |= bit
	e.keyed |= bit
	end := len(b) - 1
	if end-at == len(k) {
		e.escaped &^= bit
		e.prev[d] = keySpan{int32(at), int32(end)}
	} else {
		if e.prevEsc == nil {
			e.prevEsc = new([MaxJSONDepth]string)
		}
		e.escaped |= bit
		e.prevEsc[d] = k
	}
	e.buf = append(b, ':')
}

// String writes a string.
func (e *CanonicalEncoder) String(s string) {
	if !e.value() {
		return
	}
	b, ok := appendQuoted(e.buf, s)
	if !ok {
		e.fail("string is not valid UTF-8")
		return
	}
	e.buf = b
	e.wrote()
}

// Int writes an integer; it must be within ±MaxSafeInteger.
func (e *CanonicalEncoder) Int(n int64) {
	if !e.value() {
		return
	}
	if n > MaxSafeInteger || n < -MaxSafeInteger {
		e.fail("integer outside ±(2^53−1)")
		return
	}
	e.buf = strconv.AppendInt(e.buf, n, 10)
	e.wrote()
}

// Uint writes an unsigned integer; it must be at most MaxSafeInteger.
func (e *CanonicalEncoder) Uint(n uint64) {
	if !e.value() {
		return
	}
	if n > MaxSafeInteger {
		e.fail("integer outside ±(2^53−1)")
		return
	}
	e.buf = strconv.AppendUint(e.buf, n, 10)
	e.wrote()
}

// Float writes a number in the ECMAScript form RFC 8785 requires (an
// integral value as an integer). NaN, infinities and integral values
// beyond ±MaxSafeInteger are errors; in Strict mode so is any value with a
// fraction.
func (e *CanonicalEncoder) Float(x float64) {
	if !e.value() {
		return
	}
	var ok bool
	if e.buf, ok = appendFloat(e.buf, x, e.Strict); !ok {
		e.fail("number not finite, outside ±(2^53−1) or not an integer in a signed object")
		return
	}
	e.wrote()
}

// Number writes the JSON number literal lit (as encoding/json's
// json.Number holds it) in canonical form, under Canonicalize's rules: a
// malformed literal, an integer beyond ±MaxSafeInteger in any notation or
// a value out of range is an error, and so in Strict mode is a literal
// with a fraction or exponent.
func (e *CanonicalEncoder) Number(lit string) {
	if !e.value() {
		return
	}
	if !validNumber(lit) {
		e.fail("not a JSON number")
		return
	}
	if !containsAny(lit, ".eE") {
		n, err := strconv.ParseInt(lit, 10, 64)
		if err != nil || n > MaxSafeInteger || n < -MaxSafeInteger {
			e.fail("integer outside ±(2^53−1)")
			return
		}
		e.buf = strconv.AppendInt(e.buf, n, 10) // "-0" becomes "0"
		e.wrote()
		return
	}
	if e.Strict {
		e.fail("non-integer number in a signed object")
		return
	}
	x, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		e.fail("number out of range")
		return
	}
	var ok bool
	if e.buf, ok = appendFloat(e.buf, x, false); !ok {
		e.fail("integer outside ±(2^53−1)")
		return
	}
	e.wrote()
}

// Bool writes true or false.
func (e *CanonicalEncoder) Bool(b bool) {
	if !e.value() {
		return
	}
	e.buf = strconv.AppendBool(e.buf, b)
	e.wrote()
}

// Null writes null; in Strict mode it is an error.
func (e *CanonicalEncoder) Null() {
	if !e.value() {
		return
	}
	if e.Strict {
		e.fail("null is not allowed in a signed object")
		return
	}
	e.buf = append(e.buf, "null"...)
	e.wrote()
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
