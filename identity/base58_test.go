package identity

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"math/big"
	"slices"
	"testing"
)

func TestBase58Vectors(t *testing.T) {
	// From the IETF base58 draft (draft-msporny-base58) and Bitcoin's tests.
	for _, tc := range []struct{ hex, b58 string }{
		{"", ""},
		{"00", "1"},
		{"0000", "11"},
		{"000001", "112"},
		{"61", "2g"},
		{"626262", "a3gV"},
		{"636363", "aPEr"},
		{"48656c6c6f20576f726c6421", "2NEpo7TZRRrLZSi2U"},
		{"00eb15231dfceb60925886b67d065299925915aeb172c06647", "1NS17iag9jJgTHD1VXjvLCEnZuQ3rJDE9L"},
		{"516b6fcd0f", "ABnLTmg"},
		{"ecac89cad93923c02321", "EJDM8drfXA6uyA"},
		{"10c8511e", "Rt5zm"},
		{"00000000000000000000", "1111111111"},
	} {
		raw, _ := hex.DecodeString(tc.hex)
		if got := string(appendBase58(nil, raw)); got != tc.b58 {
			t.Errorf("encode %s = %q, want %q", tc.hex, got, tc.b58)
		}
		for _, scratch := range [][]byte{nil, make([]byte, 8), make([]byte, 128)} {
			got, ok := decodeBase58Scratch(scratch, tc.b58)
			if !ok || !bytes.Equal(got, raw) {
				t.Errorf("decode %q (scratch %d) = %x, %v; want %s", tc.b58, len(scratch), got, ok, tc.hex)
			}
		}
	}
	for _, bad := range []string{"0", "O", "I", "l", "+", " ", "1 ", "\xff"} {
		if _, ok := decodeBase58(bad); ok {
			t.Errorf("decoded %q", bad)
		}
	}
}

func TestBase58RoundTrip(t *testing.T) {
	for n := range 80 {
		b := make([]byte, n%40)
		rand.Read(b)
		for i := 0; i < n%5 && i < len(b); i++ {
			b[i] = 0
		}
		s := appendBase58(nil, b)
		got, ok := decodeBase58(string(s))
		if !ok || !bytes.Equal(got, b) {
			t.Fatalf("round trip %x -> %s -> %x", b, s, got)
		}
	}
}

// refBase58 is a math/big reference encoder for differential testing.
func refBase58(b []byte) string {
	n := new(big.Int).SetBytes(b)
	var out []byte
	fifty8 := big.NewInt(58)
	m := new(big.Int)
	for n.Sign() > 0 {
		n.DivMod(n, fifty8, m)
		out = append(out, base58Alphabet[m.Int64()])
	}
	for _, c := range b {
		if c != 0 {
			break
		}
		out = append(out, '1')
	}
	slices.Reverse(out)
	return string(out)
}

// FuzzBase58 checks the encoder against math/big, that decoding inverts
// encoding, and that any accepted text is the unique encoding of its bytes.
func FuzzBase58(f *testing.F) {
	f.Add([]byte{0, 0, 1, 2, 3}, "112")
	f.Add([]byte{0xed, 0x01, 0xff}, "z6Mkjchh")
	f.Fuzz(func(t *testing.T, b []byte, s string) {
		if len(b) > 256 || len(s) > 256 {
			return
		}
		enc := string(appendBase58(nil, b))
		if ref := refBase58(b); enc != ref {
			t.Fatalf("encode %x = %q, reference %q", b, enc, ref)
		}
		dec, ok := decodeBase58(enc)
		if !ok || !bytes.Equal(dec, b) {
			t.Fatalf("decode(encode(%x)) = %x, %v", b, dec, ok)
		}
		if d, ok := decodeBase58Scratch(make([]byte, 64), s); ok {
			if again := string(appendBase58(nil, d)); again != s {
				t.Fatalf("accepted %q which re-encodes as %q", s, again)
			}
		}
	})
}
