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

// appendBase58 appends the base58btc encoding of src to dst. Each leading
// zero byte becomes a '1'.
func appendBase58(dst, src []byte) []byte {
	zeros := 0
	for zeros < len(src) && src[zeros] == 0 {
		zeros++
	}
	// log(256)/log(58) < 1.37, so this bounds the number of digits.
	size := (len(src)-zeros)*137/100 + 1
	var stack [128]byte
	var buf []byte
	if size <= len(stack) {
		buf = stack[:size]
	} else {
		buf = make([]byte, size)
	}
	high := size - 1
	for _, b := range src[zeros:] {
		carry := int(b)
		j := size - 1
		for ; j > high || carry != 0; j-- {
			carry += 256 * int(buf[j])
			buf[j] = byte(carry % 58)
			carry /= 58
		}
		high = j
	}
	i := 0
	for i < size && buf[i] == 0 {
		i++
	}
	for range zeros {
		dst = append(dst, '1')
	}
	for ; i < size; i++ {
		dst = append(dst, base58Alphabet[buf[i]])
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
	// log(58)/log(256) < 0.733
	size := zeros + (len(s)-zeros)*733/1000 + 1
	var buf []byte
	if size <= len(scratch) {
		buf = scratch[:size]
		clear(buf)
	} else {
		buf = make([]byte, size)
	}
	num := buf[zeros:]
	high := len(num) - 1
	for i := zeros; i < len(s); i++ {
		v := base58Index[s[i]]
		if v < 0 {
			return nil, false
		}
		carry := int(v)
		j := len(num) - 1
		for ; j > high || carry != 0; j-- {
			carry += 58 * int(num[j])
			num[j] = byte(carry)
			carry >>= 8
		}
		high = j
	}
	i := 0
	for i < len(num) && num[i] == 0 {
		i++
	}
	// Move the significant bytes right after the leading zero bytes.
	n := copy(buf[zeros:], num[i:])
	return buf[:zeros+n], true
}
