package identity

// base58btc (the Bitcoin alphabet) as used by multibase prefix 'z'. Only
// short inputs are ever encoded or decoded (did:key values), so the
// quadratic textbook algorithm is fine; callers bound the length first.

const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

var base58Index = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(base58Alphabet); i++ {
		t[base58Alphabet[i]] = int8(i)
	}
	return t
}()

// limbBase is 58^5: the encoder works in base-58^5 limbs so that each
// step is one 64-bit division by a constant, not one per digit.
const limbBase = 58 * 58 * 58 * 58 * 58

// appendBase58 appends the base58btc encoding of src to dst. Each leading
// zero byte becomes a '1'.
func appendBase58(dst, src []byte) []byte {
	zeros := 0
	for zeros < len(src) && src[zeros] == 0 {
		zeros++
	}
	src = src[zeros:]
	// Little-endian base-58^5 limbs of the number; 5 digits per limb and
	// at most 1.37 digits per byte.
	var stack [16]uint32
	limbs := stack[:0]
	if need := (len(src)*137/100)/5 + 2; need > len(stack) {
		limbs = make([]uint32, 0, need)
	}
	for i := 0; i < len(src); {
		// Take the first len%4 bytes, then 4 bytes at a time.
		w := 4
		if i == 0 && len(src)%4 != 0 {
			w = len(src) % 4
		}
		var carry uint64
		for _, b := range src[i : i+w] {
			carry = carry<<8 | uint64(b)
		}
		shift := uint(8 * w)
		i += w
		// limbs[j] < 2^30, so limbs[j]<<32 + carry fits in 64 bits.
		for j := range limbs {
			carry += uint64(limbs[j]) << shift
			limbs[j] = uint32(carry % limbBase)
			carry /= limbBase
		}
		for carry > 0 {
			limbs = append(limbs, uint32(carry%limbBase))
			carry /= limbBase
		}
	}
	for range zeros {
		dst = append(dst, '1')
	}
	for j := len(limbs) - 1; j >= 0; j-- {
		var digits [5]byte
		v := limbs[j]
		for k := 4; k >= 0; k-- {
			digits[k] = base58Alphabet[v%58]
			v /= 58
		}
		d := digits[:]
		if j == len(limbs)-1 {
			// The most significant limb has no leading zero digits.
			for len(d) > 1 && d[0] == '1' {
				d = d[1:]
			}
		}
		dst = append(dst, d...)
	}
	return dst
}

// decodeBase58 decodes base58btc text. It reports false for any character
// outside the alphabet. Every base58 string decodes to exactly one byte
// string and vice versa (leading '1's are leading zero bytes), so no
// separate canonicality check is needed; the fuzz tests check that
// accepted input re-encodes to itself.
func decodeBase58(s string) ([]byte, bool) {
	return decodeBase58Scratch(nil, s)
}

// decodeBase58Scratch is decodeBase58 using scratch as working memory when
// it is large enough, so short inputs decode without allocating. The result
// may alias scratch.
func decodeBase58Scratch(scratch []byte, s string) ([]byte, bool) {
	zeros := 0
	for zeros < len(s) && s[zeros] == '1' {
		zeros++
	}
	digits := s[zeros:]
	// Little-endian base-2^32 limbs; at most 0.733 bytes per digit.
	var stack [32]uint32
	limbs := stack[:0]
	if need := (len(digits)*733/1000)/4 + 2; need > len(stack) {
		limbs = make([]uint32, 0, need)
	}
	for i := 0; i < len(digits); {
		// Fold up to 5 digits into one multiply-add of the number.
		var v, mul uint64 = 0, 1
		for k := 0; k < 5 && i < len(digits); k++ {
			d := base58Index[digits[i]]
			if d < 0 {
				return nil, false
			}
			v = v*58 + uint64(d)
			mul *= 58
			i++
		}
		carry := v
		// limbs[j] < 2^32 and mul <= 58^5 < 2^30, so this fits in 64 bits.
		for j := range limbs {
			carry += uint64(limbs[j]) * mul
			limbs[j] = uint32(carry)
			carry >>= 32
		}
		for carry > 0 {
			limbs = append(limbs, uint32(carry))
			carry >>= 32
		}
	}
	size := zeros + 4*len(limbs)
	var buf []byte
	if size <= len(scratch) {
		buf = scratch[:size]
	} else {
		buf = make([]byte, size)
	}
	clear(buf[:zeros])
	n := zeros
	started := false
	for j := len(limbs) - 1; j >= 0; j-- {
		for shift := 24; shift >= 0; shift -= 8 {
			b := byte(limbs[j] >> uint(shift))
			if !started && b == 0 {
				continue
			}
			started = true
			buf[n] = b
			n++
		}
	}
	return buf[:n], true
}
