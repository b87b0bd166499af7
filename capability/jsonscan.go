package capability

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/talosgo/talos/contracts"
)

// scanner is a small strict JSON reader for the fixed-shape objects of this
// package (tokens, chains, legacy tokens). It is faster than encoding/json
// and stricter: keys are matched exactly, numbers must be integers within
// ±(2^53−1) without fraction or exponent, and null is never accepted.
// Free-form members (metadata, constraints) are cut out as raw spans and
// checked with contracts.CanonicalizeStrict.
type scanner struct {
	b   []byte
	i   int
	err string
}

func (s *scanner) fail(msg string) bool {
	if s.err == "" {
		s.err = msg
	}
	return false
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// consume skips white space and then c, reporting whether c was there.
func (s *scanner) consume(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// eof reports whether only white space remains.
func (s *scanner) eof() bool {
	s.ws()
	return s.i == len(s.b)
}

// object calls member for every key of an object, positioned at its value.
// member returns false to stop with an error.
func (s *scanner) object(member func(key string) bool) bool {
	if !s.consume('{') {
		return s.fail("expected an object")
	}
	if s.consume('}') {
		return true
	}
	for {
		s.ws()
		key, ok := s.str()
		if !ok {
			return false
		}
		if !s.consume(':') {
			return s.fail("expected ':'")
		}
		if !member(key) {
			return false
		}
		if s.consume(',') {
			continue
		}
		if s.consume('}') {
			return true
		}
		return s.fail("expected ',' or '}'")
	}
}

// array calls elem for every element of an array, positioned at it.
func (s *scanner) array(elem func() bool) bool {
	if !s.consume('[') {
		return s.fail("expected an array")
	}
	if s.consume(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if s.consume(',') {
			continue
		}
		if s.consume(']') {
			return true
		}
		return s.fail("expected ',' or ']'")
	}
}

// str reads a JSON string. It rejects invalid UTF-8, control characters
// and lone surrogates. Strings without escapes share no memory with the
// input only when it is copied by the caller: the input slice is never
// retained because the result is converted with string().
func (s *scanner) str() (string, bool) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return "", s.fail("expected a string")
	}
	s.i++
	start := s.i
	// Fast path: no escapes.
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c == '"' {
			raw := s.b[start:s.i]
			s.i++
			if !utf8.Valid(raw) {
				return "", s.fail("invalid UTF-8 in string")
			}
			return string(raw), true
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", s.fail("control character in string")
		}
		s.i++
	}
	var sb strings.Builder
	sb.Write(s.b[start:s.i])
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			out := sb.String()
			if !utf8.ValidString(out) {
				return "", s.fail("invalid UTF-8 in string")
			}
			return out, true
		case c < 0x20:
			return "", s.fail("control character in string")
		case c != '\\':
			sb.WriteByte(c)
			s.i++
			continue
		}
		s.i++
		if s.i >= len(s.b) {
			break
		}
		e := s.b[s.i]
		s.i++
		switch e {
		case '"', '\\', '/':
			sb.WriteByte(e)
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				if r >= 0xDC00 || s.i+6 > len(s.b) || s.b[s.i] != '\\' || s.b[s.i+1] != 'u' {
					return "", s.fail("lone surrogate in string")
				}
				s.i += 2
				r2, ok := s.hex4()
				if !ok {
					return "", false
				}
				r = utf16.DecodeRune(r, r2)
				if r == utf8.RuneError {
					return "", s.fail("lone surrogate in string")
				}
			}
			sb.WriteRune(r)
		default:
			return "", s.fail("invalid escape in string")
		}
	}
	return "", s.fail("unterminated string")
}

func (s *scanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, s.fail("short \\u escape")
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, s.fail("invalid \\u escape")
		}
	}
	s.i += 4
	return r, true
}

// integer reads an integer without fraction or exponent within
// ±(2^53−1), in its one canonical spelling: no leading zeros, no -0.
func (s *scanner) integer() (int64, bool) {
	s.ws()
	neg := false
	if s.i < len(s.b) && s.b[s.i] == '-' {
		neg = true
		s.i++
	}
	start := s.i
	var n int64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		n = n*10 + int64(s.b[s.i]-'0')
		if n > contracts.MaxSafeInteger {
			return 0, s.fail("integer outside ±(2^53−1)")
		}
		s.i++
	}
	switch {
	case s.i == start:
		return 0, s.fail("expected an integer")
	case s.b[start] == '0' && s.i-start > 1:
		return 0, s.fail("leading zero in integer")
	case neg && n == 0:
		// -0 is zero spelled a second way; canonical JSON writes 0.
		return 0, s.fail("negative zero in integer")
	}
	if s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		return 0, s.fail("non-integer number")
	}
	if neg {
		n = -n
	}
	return n, true
}

// boolean reads true or false.
func (s *scanner) boolean() (bool, bool) {
	s.ws()
	rest := s.b[s.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		s.i += 4
		return true, true
	case len(rest) >= 5 && string(rest[:5]) == "false":
		s.i += 5
		return false, true
	}
	return false, s.fail("expected a boolean")
}

// span skips one value of any type and returns its raw bytes. It only
// finds the value's extent; the caller validates the span with
// contracts.CanonicalizeStrict.
func (s *scanner) span() ([]byte, bool) {
	s.ws()
	start := s.i
	depth := 0
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch c {
		case '"':
			s.i++
			for s.i < len(s.b) && s.b[s.i] != '"' {
				if s.b[s.i] == '\\' {
					s.i++
				}
				s.i++
			}
			if s.i >= len(s.b) {
				return nil, s.fail("unterminated string")
			}
			s.i++
		case '{', '[':
			depth++
			if depth > contracts.MaxJSONDepth {
				return nil, s.fail("nesting too deep")
			}
			s.i++
		case '}', ']':
			if depth == 0 {
				if s.i == start {
					return nil, s.fail("expected a value")
				}
				return s.b[start:s.i], true
			}
			depth--
			s.i++
		case ',':
			if depth == 0 {
				if s.i == start {
					return nil, s.fail("expected a value")
				}
				return s.b[start:s.i], true
			}
			s.i++
		case '-':
			// Outside strings a '-' starts a number. -0 is zero spelled a
			// second way, and the strict canonicalizer the caller runs
			// would silently turn it into 0, so it is refused here.
			if s.i+1 < len(s.b) && s.b[s.i+1] == '0' && (s.i+2 == len(s.b) || !isNumberByte(s.b[s.i+2])) {
				return nil, s.fail("negative zero in number")
			}
			s.i++
		default:
			s.i++
		}
		if depth == 0 && (c == '"' || c == '}' || c == ']') {
			return s.b[start:s.i], true
		}
	}
	if depth == 0 && s.i > start {
		return s.b[start:s.i], true
	}
	return nil, s.fail("unexpected end of input")
}

// isNumberByte reports whether c can continue a number after its first
// digit.
func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E'
}

// appendString appends the RFC 8785 form of a JSON string.
func appendString(dst []byte, v string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, v[start:i]...)
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		start = i + 1
	}
	dst = append(dst, v[start:]...)
	return append(dst, '"')
}
