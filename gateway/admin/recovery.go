package admin

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/internal/httpx"
)

// RecoveryFileName is the recovery file in a server's data directory.
const RecoveryFileName = "admin-recovery.json"

// RecoveryMaxAge is how long a recovery file is honoured after its
// created_at.
const RecoveryMaxAge = 24 * time.Hour

// recoveryInfo and recoveryDomain are the HKDF info and the MAC message
// prefix of the recovery file format (version 1).
const (
	recoveryInfo   = "talos admin recovery v1"
	recoveryDomain = "talos-admin-recovery-v1\n"
)

// maxRecoveryFile bounds the recovery file read.
const maxRecoveryFile = 4 << 10

// A RecoveryFile is DIR/admin-recovery.json, written by `talos admin
// recover`: the SHA-256 of a new bootstrap credential, when it was made,
// and an HMAC-SHA256 under a key derived from the master key, so that only
// someone holding the master key can make one the server accepts.
type RecoveryFile struct {
	V                int    `json:"v"`
	CredentialSHA256 string `json:"credential_sha256"`
	CreatedAt        string `json:"created_at"`
	MAC              string `json:"mac"`
}

// RecoveryKey derives the recovery MAC key from the master key:
// HKDF-SHA256(master, salt nil, info "talos admin recovery v1", 32 bytes).
func RecoveryKey(masterKey []byte) ([]byte, error) {
	if len(masterKey) == 0 {
		return nil, errors.New("admin: recovery key needs the master key")
	}
	return hkdf.Key(sha256.New, masterKey, nil, recoveryInfo, 32)
}

func recoveryMAC(key []byte, credSHA, createdAt string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(recoveryDomain + credSHA + "\n" + createdAt))
	return m.Sum(nil)
}

// MarshalRecoveryFile returns the bytes of the recovery file of
// credential (a talos_admin_ credential) made at createdAt, MACed with
// the master key: compact JSON, fields in the order v, credential_sha256,
// created_at, mac, and a final newline. The file is written 0600.
func MarshalRecoveryFile(masterKey []byte, credential string, createdAt time.Time) ([]byte, error) {
	key, err := RecoveryKey(masterKey)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(credential))
	f := RecoveryFile{V: 1, CredentialSHA256: contracts.EncodeBase64URL(sum[:]), CreatedAt: createdAt.UTC().Format(time.RFC3339)}
	f.MAC = contracts.EncodeBase64URL(recoveryMAC(key, f.CredentialSHA256, f.CreatedAt))
	raw, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	return append(raw, '\n'), nil
}

// WriteRecoveryFile writes the recovery file of credential into dir
// (mode 0600, replacing one there): what `talos admin recover` does.
func WriteRecoveryFile(dir string, masterKey []byte, credential string, createdAt time.Time) error {
	raw, err := MarshalRecoveryFile(masterKey, credential, createdAt)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".admin-recovery-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, RecoveryFileName))
}

// errRecovery is the one answer to a recovery file that does not admit a
// credential (which check failed is not told).
var errRecovery = contracts.New(contracts.CodeAuthInvalid, "admin credential not accepted")

// CheckRecoveryFile reports whether raw, the bytes of a recovery file,
// admits credential: version 1, strict JSON, the credential's SHA-256, a
// MAC that verifies under key ([RecoveryKey] of the master key, compared
// in constant time) and a created_at at most [RecoveryMaxAge] old (and
// not in the future by more than a minute). Every refusal is the same
// AUTH_INVALID error.
func CheckRecoveryFile(raw []byte, key []byte, credential string, now time.Time) error {
	var f RecoveryFile
	if len(raw) > maxRecoveryFile || contracts.UnmarshalStrict(bytes.TrimSuffix(raw, []byte("\n")), &f) != nil || f.V != 1 {
		return errRecovery
	}
	mac, err := contracts.DecodeBase64URL(f.MAC)
	if err != nil || len(key) == 0 || !hmac.Equal(mac, recoveryMAC(key, f.CredentialSHA256, f.CreatedAt)) {
		return errRecovery
	}
	created, err := time.Parse(time.RFC3339, f.CreatedAt)
	if err != nil || now.Sub(created) >= RecoveryMaxAge || created.Sub(now) > time.Minute {
		return errRecovery
	}
	sum := sha256.Sum256([]byte(credential))
	want, err := contracts.DecodeBase64URL(f.CredentialSHA256)
	if err != nil || !hmac.Equal(want, sum[:]) {
		return errRecovery
	}
	return nil
}

// claimRecovery checks the recovery file at path against credential and,
// when it admits it, removes it: only the one caller whose remove succeeds
// may use it (spent once).
func claimRecovery(path string, key []byte, credential string, now time.Time) error {
	raw, err := httpx.ReadFileLimited(path, maxRecoveryFile)
	if err != nil {
		return errRecovery
	}
	if err := CheckRecoveryFile(raw, key, credential, now); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return errRecovery
	}
	return nil
}
