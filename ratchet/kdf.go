package ratchet

import (
	"crypto/sha256"
	"crypto/subtle"

	"golang.org/x/crypto/curve25519"
)

// Sizes fixed by the contract (v1.1.0).
const (
	keySize   = 32 // root, chain and message keys; X25519 keys
	nonceSize = 12 // ChaCha20-Poly1305 nonce
	tagSize   = 16 // Poly1305 tag
)

// HKDF info strings of the contract.
const (
	infoRoot    = "talos-double-ratchet-root"
	infoMessage = "talos-double-ratchet-message"
	infoChain   = "talos-double-ratchet-chain"
	infoX3DH    = "x3dh-init"
)

// hmacSHA256 returns HMAC-SHA256(key, a ‖ b ‖ c) for a key of at most one
// block and a message of at most 128 bytes, without allocating.
func hmacSHA256(key []byte, a, b []byte, c byte, withC bool) [32]byte {
	var buf [64 + 128]byte
	var pad [64]byte
	copy(pad[:], key)
	for i := range pad {
		buf[i] = pad[i] ^ 0x36
	}
	n := 64
	n += copy(buf[n:], a)
	n += copy(buf[n:], b)
	if withC {
		buf[n] = c
		n++
	}
	inner := sha256.Sum256(buf[:n])
	for i := range pad {
		buf[i] = pad[i] ^ 0x5c
	}
	copy(buf[64:], inner[:])
	return sha256.Sum256(buf[:64+32])
}

// hkdfExtract is HKDF-Extract with an empty salt (RFC 5869: a string of
// HashLen zeros). ikm is at most 128 bytes.
func hkdfExtract(ikm1, ikm2 []byte) [32]byte {
	var zero [32]byte
	return hmacSHA256(zero[:], ikm1, ikm2, 0, false)
}

// hkdfExpand1 is HKDF-Expand for L = 32 (one block).
func hkdfExpand1(prk *[32]byte, info string) [32]byte {
	var infoBuf [32]byte
	n := copy(infoBuf[:], info)
	return hmacSHA256(prk[:], nil, infoBuf[:n], 1, true)
}

// hkdfExpand2 is HKDF-Expand for L = 64 (two blocks).
func hkdfExpand2(prk *[32]byte, info string) (t1, t2 [32]byte) {
	var infoBuf [32]byte
	n := copy(infoBuf[:], info)
	t1 = hmacSHA256(prk[:], nil, infoBuf[:n], 1, true)
	t2 = hmacSHA256(prk[:], t1[:], infoBuf[:n], 2, true)
	return t1, t2
}

// kdfRK is the contract's KDF_RK: HKDF(ikm = rk ‖ dh, salt = ∅,
// info = "talos-double-ratchet-root", L = 64) split into (new rk, chain key).
func kdfRK(rk, dh *[32]byte) (newRK, ck [32]byte) {
	prk := hkdfExtract(rk[:], dh[:])
	return hkdfExpand2(&prk, infoRoot)
}

// kdfCK is the contract's KDF_CK: two HKDFs over the chain key with the
// "message" and "chain" infos. Both share one extract step.
func kdfCK(ck *[32]byte) (mk, nextCK [32]byte) {
	prk := hkdfExtract(ck[:], nil)
	return hkdfExpand1(&prk, infoMessage), hkdfExpand1(&prk, infoChain)
}

// x3dhInit is the contract's initial root key: HKDF(dh0, ∅, "x3dh-init", 32).
func x3dhInit(dh0 *[32]byte) [32]byte {
	prk := hkdfExtract(dh0[:], nil)
	return hkdfExpand1(&prk, infoX3DH)
}

// dh computes X25519(priv, pub). It fails with RATCHET_INVALID_DH_KEY when
// pub is a low-order point (all-zero shared secret).
func dh(priv, pub *[32]byte) ([32]byte, error) {
	var out [32]byte
	s, err := curve25519.X25519(priv[:], pub[:])
	if err != nil {
		return out, errInvalidDH()
	}
	copy(out[:], s)
	var zero [32]byte
	if subtle.ConstantTimeCompare(out[:], zero[:]) == 1 {
		return out, errInvalidDH()
	}
	return out, nil
}

// publicKey returns the X25519 public key of priv.
func publicKey(priv *[32]byte) [32]byte {
	var out [32]byte
	p, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		// The base point has prime order, so this cannot happen.
		panic("ratchet: X25519 with the base point failed: " + err.Error())
	}
	copy(out[:], p)
	return out
}
