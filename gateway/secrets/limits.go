package secrets

import "time"

// Limits of the package, in one place.
const (
	// MaxSecretSize bounds one secret's plaintext.
	MaxSecretSize = 64 << 10
	// MaxIDLen bounds a secret id.
	MaxIDLen = 200
	// maxFileSize bounds the secrets file read by OpenFile.
	maxFileSize = 16 << 20
	// maxUpdateTries bounds the compare-and-set retries of one write.
	maxUpdateTries = 16
	// keepKEKs is how many of the newest KEKs are always kept. Older ones
	// are retired after a complete rotation when no stored envelope names
	// them, which keeps the keyring far below its limit.
	keepKEKs = 4
	// UnlockTimeout bounds the release of a store's rotation lock, which
	// runs on a fresh context (the caller's may have ended).
	UnlockTimeout = 2 * time.Second
)

// minRotationInterval is the shortest interval RotateEvery accepts (a
// shorter one is raised to it).
const minRotationInterval = time.Millisecond
