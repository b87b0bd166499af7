package budget

import (
	"strconv"

	"github.com/talosgo/talos/contracts"
)

// MicrosPerUSD is the number of micro-units in one US dollar.
const MicrosPerUSD = 1_000_000

// USD formats micro-units as a decimal dollar amount with no exponent and
// no trailing zeros ("1.5", "0.000001", "12"). The text is exact and, for
// amounts up to MaxAmount, is also the shortest round-trip form of the
// nearest float64, so it is a valid RFC 8785 number.
func USD(micros int64) string {
	return string(AppendUSD(nil, micros))
}

// AppendUSD appends USD(micros) to dst.
func AppendUSD(dst []byte, micros int64) []byte {
	u := uint64(micros)
	if micros < 0 {
		dst = append(dst, '-')
		u = -u
	}
	dst = strconv.AppendUint(dst, u/MicrosPerUSD, 10)
	frac := u % MicrosPerUSD
	if frac == 0 {
		return dst
	}
	var f [7]byte
	f[0] = '.'
	for i := 6; i >= 1; i-- {
		f[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := 7
	for f[n-1] == '0' {
		n--
	}
	return append(dst, f[:n]...)
}

// ParseUSD parses a non-negative decimal dollar amount from configuration
// or JSON ("12", "0.5", "12.50", "3.000001") into micro-units. It accepts at most six
// fractional digits, no sign, exponent, spaces or leading zeros (other than
// "0" itself), and at most MaxAmount; anything else is a TALOS_INVALID_INPUT
// error.
func ParseUSD(s string) (int64, error) {
	bad := func(why string) (int64, error) {
		return 0, contracts.New(contracts.CodeInvalidInput, "budget: invalid USD amount: "+why)
	}
	if len(s) == 0 || len(s) > MaxUSDLen {
		return bad("empty or too long")
	}
	intPart, frac := s, ""
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			intPart, frac = s[:i], s[i+1:]
			if frac == "" {
				return bad("missing digits after the point")
			}
			break
		}
	}
	if intPart == "" {
		return bad("missing integer digits")
	}
	if len(intPart) > 1 && intPart[0] == '0' {
		return bad("leading zero")
	}
	if len(frac) > 6 {
		return bad("more than six fractional digits")
	}
	var v uint64
	for i := 0; i < len(intPart); i++ {
		c := intPart[i]
		if c < '0' || c > '9' {
			return bad("not a decimal number")
		}
		v = v*10 + uint64(c-'0')
		if v > uint64(MaxAmount/MicrosPerUSD)+1 {
			return bad("too large")
		}
	}
	v *= MicrosPerUSD
	scale := uint64(MicrosPerUSD / 10)
	for i := 0; i < len(frac); i++ {
		c := frac[i]
		if c < '0' || c > '9' {
			return bad("not a decimal number")
		}
		v += uint64(c-'0') * scale
		scale /= 10
	}
	if v > uint64(MaxAmount) {
		return bad("too large")
	}
	return int64(v), nil
}
