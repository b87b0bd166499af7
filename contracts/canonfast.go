package contracts

import "unicode/utf8"

// isCanonical reports whether raw is a JSON text already in the form
// jcs.Transform would produce, so canonicalize can skip parsing it into a
// tree and printing it again. It answers true only for a conservative
// subset that is common on the wire (our own encoders and the other SDKs
// write it): no whitespace; integers only; object keys of printable ASCII
// without escapes, in strictly increasing order (so no duplicates; for
// ASCII, byte order is RFC 8785's UTF-16 order); strings of valid UTF-8
// whose only escapes are the ones RFC 8785 writes (\" \\ \b \f \n \r \t and
// \u00xx for the other control characters). Anything else answers false and
// takes the full path, so a false answer never rejects a document.
//
// scanLiterals runs first (size, depth, number ranges, strict rules);
// FuzzCanonicalFastPath checks that every input answered true is valid and
// byte-equal to jcs.Transform's output.
func isCanonical(raw []byte) bool {
	end, ok := canonValue(raw, 0, 0)
	return ok && end == len(raw)
}

// canonValue checks one value starting at raw[i] and returns the index
// after it.
func canonValue(raw []byte, i, depth int) (int, bool) {
	if i >= len(raw) || depth > MaxJSONDepth {
		return 0, false
	}
	switch c := raw[i]; {
	case c == '{':
		return canonObject(raw, i+1, depth+1)
	case c == '[':
		i++
		if i < len(raw) && raw[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = canonValue(raw, i, depth+1); !ok || i >= len(raw) {
				return 0, false
			}
			switch raw[i] {
			case ',':
				i++
			case ']':
				return i + 1, true
			default:
				return 0, false
			}
		}
	case c == '"':
		return canonString(raw, i+1)
	case c == '-' || c >= '0' && c <= '9':
		return canonInteger(raw, i)
	case c == 't':
		return canonLiteral(raw, i, "true")
	case c == 'f':
		return canonLiteral(raw, i, "false")
	case c == 'n':
		return canonLiteral(raw, i, "null")
	}
	return 0, false
}

func canonLiteral(raw []byte, i int, lit string) (int, bool) {
	if len(raw)-i < len(lit) || string(raw[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// canonInteger accepts -?(0|[1-9][0-9]*) except -0; scanLiterals has
// already bounded its value. A fraction or an exponent answers false.
func canonInteger(raw []byte, i int) (int, bool) {
	start := i
	if raw[i] == '-' {
		i++
	}
	if i >= len(raw) {
		return 0, false
	}
	if raw[i] == '0' {
		i++
		if i-start == 2 { // "-0" canonicalizes to 0
			return 0, false
		}
	} else if raw[i] >= '1' && raw[i] <= '9' {
		for i < len(raw) && raw[i] >= '0' && raw[i] <= '9' {
			i++
		}
	} else {
		return 0, false
	}
	if i < len(raw) && (raw[i] == '.' || raw[i] == 'e' || raw[i] == 'E' || raw[i] >= '0' && raw[i] <= '9') {
		return 0, false
	}
	return i, true
}

// canonObject checks members after '{' and returns the index after '}'.
func canonObject(raw []byte, i, depth int) (int, bool) {
	if i < len(raw) && raw[i] == '}' {
		return i + 1, true
	}
	var prev []byte
	for first := true; ; first = false {
		if i >= len(raw) || raw[i] != '"' {
			return 0, false
		}
		// Keys: printable ASCII, no escapes, strictly increasing.
		j := i + 1
		for j < len(raw) && raw[j] != '"' {
			if c := raw[j]; c < 0x20 || c >= 0x7f || c == '\\' {
				return 0, false
			}
			j++
		}
		if j >= len(raw) {
			return 0, false
		}
		key := raw[i+1 : j]
		if !first && string(prev) >= string(key) {
			return 0, false
		}
		prev = key
		i = j + 1
		if i >= len(raw) || raw[i] != ':' {
			return 0, false
		}
		var ok bool
		if i, ok = canonValue(raw, i+1, depth); !ok || i >= len(raw) {
			return 0, false
		}
		switch raw[i] {
		case ',':
			i++
		case '}':
			return i + 1, true
		default:
			return 0, false
		}
	}
}

// canonString checks a string body after '"' and returns the index after
// the closing quote.
func canonString(raw []byte, i int) (int, bool) {
	for i < len(raw) {
		c := raw[i]
		switch {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(raw) {
				return 0, false
			}
			switch raw[i+1] {
			case '"', '\\', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				// RFC 8785 writes \u00xx (lowercase hex) only for control
				// characters without a short escape.
				if len(raw)-i < 6 || raw[i+2] != '0' || raw[i+3] != '0' || !lowerHex(raw[i+4]) || !lowerHex(raw[i+5]) {
					return 0, false
				}
				v := hexVal(raw[i+4])<<4 | hexVal(raw[i+5])
				if v >= 0x20 || v == '\b' || v == '\f' || v == '\n' || v == '\r' || v == '\t' {
					return 0, false
				}
				i += 6
			default:
				return 0, false
			}
		case c < 0x20:
			return 0, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				return 0, false
			}
			i += size
		}
	}
	return 0, false
}

func lowerHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }
