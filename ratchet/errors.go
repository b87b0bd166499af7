package ratchet

import "github.com/talosgo/talos/contracts"

// Sentinels for the contract's ratchet error codes. Each matches, through
// errors.Is, every error of its code that this package returns; the errors
// themselves carry a message. They are *contracts.Error values, so
// contracts.CodeOf reports the code.
var (
	// ErrAuthFailed reports a message that did not authenticate: a wrong
	// key, a forged or replayed message, a tampered ciphertext. It carries
	// no detail on purpose.
	ErrAuthFailed = contracts.NewSentinel(contracts.CodeRatchetAuthFailed, "")
	// ErrMaxSkipExceeded reports a header that would skip more than MaxSkip
	// message keys on one chain.
	ErrMaxSkipExceeded = contracts.NewSentinel(contracts.CodeRatchetMaxSkipExceeded, "")
	// ErrInvalidHeader reports an envelope or header that does not parse,
	// is not canonical, or has out-of-range fields.
	ErrInvalidHeader = contracts.NewSentinel(contracts.CodeRatchetInvalidHeader, "")
	// ErrInvalidDHKey reports a peer X25519 key that yields an all-zero
	// shared secret (a low-order point).
	ErrInvalidDHKey = contracts.NewSentinel(contracts.CodeRatchetInvalidDHKey, "")
	// ErrInvalidSignature reports a prekey bundle or setup proof whose
	// Ed25519 signature does not verify (X3DH_INVALID_SIGNATURE).
	ErrInvalidSignature = contracts.NewSentinel(contracts.CodeX3DHInvalidSignature, "")
)

func errAuth() error {
	return contracts.New(contracts.CodeRatchetAuthFailed, "ratchet: message authentication failed")
}

func errInvalidDH() error {
	return contracts.New(contracts.CodeRatchetInvalidDHKey, "ratchet: invalid X25519 public key (all-zero shared secret)")
}

func errHeader(msg string) error {
	return contracts.New(contracts.CodeRatchetInvalidHeader, "ratchet: "+msg)
}

func errMaxSkip() error {
	return contracts.New(contracts.CodeRatchetMaxSkipExceeded, "ratchet: Too many skipped messages")
}

func errSignature(msg string) error {
	return contracts.New(contracts.CodeX3DHInvalidSignature, "ratchet: "+msg)
}

func errInput(msg string) error {
	return contracts.New(contracts.CodeInvalidInput, "ratchet: "+msg)
}
