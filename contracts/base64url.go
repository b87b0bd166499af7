package contracts

import (
	"encoding/base64"
	"strings"
)

var strictB64 = base64.RawURLEncoding.Strict()

// EncodeBase64URL returns the unpadded base64url (RFC 4648 §5) text of b.
func EncodeBase64URL(b []byte) string {
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeBase64URL decodes strict unpadded base64url, the only form the
// contracts accept (test_vectors/base64url.json): the alphabet is checked
// first (no padding, whitespace or line breaks, which Go's decoder would
// otherwise skip), a length of 1 mod 4 is rejected, and the trailing bits must
// be zero so that every byte string has exactly one accepted encoding.
// Errors are *Error with code TALOS_INVALID_INPUT.
func DecodeBase64URL(s string) ([]byte, error) {
	// Go's strict decoder rejects every character outside the alphabet and
	// padding, except that it skips CR and LF: refuse those first. The
	// slower classification below runs only to explain a failure.
	if !strings.ContainsAny(s, "\r\n") {
		if b, err := strictB64.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, New(CodeInvalidInput, "base64url: invalid character")
		}
	}
	if len(s)%4 == 1 {
		return nil, New(CodeInvalidInput, "base64url: invalid length")
	}
	return nil, New(CodeInvalidInput, "base64url: non-canonical encoding")
}

// DecodeBase64Lenient decodes the legacy byte encodings some SDKs emit:
// standard or URL alphabet, with or without padding. Use it only for fields
// that are documented as legacy (for example the std-base64 public keys of
// crypto/ed25519_signatures.json); everything else uses DecodeBase64URL.
// Whitespace is still rejected.
func DecodeBase64Lenient(s string) ([]byte, error) {
	t := strings.TrimRight(s, "=")
	if len(s)-len(t) > 2 {
		return nil, New(CodeInvalidInput, "base64: invalid padding")
	}
	if strings.ContainsAny(t, "+/") && strings.ContainsAny(t, "-_") {
		return nil, New(CodeInvalidInput, "base64: mixed alphabets")
	}
	t = strings.NewReplacer("+", "-", "/", "_").Replace(t)
	if len(s) != len(t) && len(s)%4 != 0 {
		return nil, New(CodeInvalidInput, "base64: invalid padding")
	}
	return DecodeBase64URL(t)
}
