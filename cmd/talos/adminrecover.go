package main

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/talosgo/talos/contracts"
)

// The recovery file (see the admin API contract): DIR/admin-recovery.json
// = {"v":1,"credential_sha256":"<b64url>","created_at":"<RFC3339>","mac":"<b64url>"}
// with mac = HMAC-SHA256(HKDF-SHA256(master key, salt nil, recoveryInfo,
// 32), recoveryDomain + credential_sha256 + "\n" + created_at). The
// server accepts the credential at POST /v1/admin/bootstrap once, within
// 24 hours, even when owners exist.
const (
	recoveryFileName = "admin-recovery.json"
	recoveryInfo     = "talos admin recovery v1"
	recoveryDomain   = "talos-admin-recovery-v1\n"
	recoveryPrefix   = "talos_admin_"
	masterKeyEnv     = "TALOS_MASTER_KEY"
	masterKeyFile    = "master.key"
	masterKeySize    = 32
	recoveryValidFor = 24 * time.Hour
)

// recoveryFile is the file's JSON, members in the contract's order.
type recoveryFile struct {
	V                int    `json:"v"`
	CredentialSHA256 string `json:"credential_sha256"`
	CreatedAt        string `json:"created_at"`
	MAC              string `json:"mac"`
}

// marshalRecoveryFile returns the recovery file admitting credential,
// made at createdAt and MACed under masterKey: compact JSON and a newline.
func marshalRecoveryFile(masterKey []byte, credential string, createdAt time.Time) ([]byte, error) {
	if len(masterKey) != masterKeySize {
		return nil, errors.New("the master key must be 32 bytes")
	}
	key, err := hkdf.Key(sha256.New, masterKey, nil, recoveryInfo, 32)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	sum := sha256.Sum256([]byte(credential))
	f := recoveryFile{V: 1, CredentialSHA256: contracts.EncodeBase64URL(sum[:]), CreatedAt: createdAt.UTC().Format(time.RFC3339)}
	m := hmac.New(sha256.New, key)
	io.WriteString(m, recoveryDomain+f.CredentialSHA256+"\n"+f.CreatedAt)
	f.MAC = contracts.EncodeBase64URL(m.Sum(nil))
	b, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// masterKey reads the master key as the server does: $TALOS_MASTER_KEY,
// else DIR/master.key (unpadded base64url of 32 bytes; refused when other
// users may read it).
func (e *env) masterKey(dir string) ([]byte, error) {
	if v := e.getenv(masterKeyEnv); v != "" {
		k, err := contracts.DecodeBase64URL(strings.TrimSpace(v))
		if err != nil || len(k) != masterKeySize {
			return nil, failf(exitFailed, "$%s does not hold 32 bytes in unpadded base64url", masterKeyEnv)
		}
		return k, nil
	}
	path := filepath.Join(dir, masterKeyFile)
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, failf(exitIO, "no master key: set $%s (the server's) or use the data directory holding %s", masterKeyEnv, masterKeyFile)
	}
	if err != nil {
		return nil, wrap(exitIO, "master key file", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, failf(exitFailed, "master key file %s is readable by other users (mode %v); chmod 600 it", path, st.Mode().Perm())
	}
	raw, err := e.readInput(path, 256)
	if err != nil {
		return nil, err
	}
	k, err := contracts.DecodeBase64URL(strings.TrimSpace(string(raw)))
	if err != nil || len(k) != masterKeySize {
		return nil, failf(exitFailed, "master key file %s does not hold 32 bytes in unpadded base64url", path)
	}
	return k, nil
}

func cmdAdminRecover(e *env, args []string) error {
	const syn = "talos admin recover --data-dir DIR   (master key from $TALOS_MASTER_KEY or DIR/master.key)"
	fs := newFlags("admin recover")
	dir := fs.String("data-dir", "", "the server's data directory (required; the recovery file is written there)")
	if err := e.parse(fs, syn, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError("admin recover takes no arguments")
	}
	if *dir == "" {
		return usageError("--data-dir is required")
	}
	st, err := os.Stat(*dir)
	if err != nil {
		return wrap(exitIO, "data directory", err)
	}
	if !st.IsDir() {
		return failf(exitIO, "%s is not a directory", *dir)
	}
	key, err := e.masterKey(*dir)
	if err != nil {
		return err
	}
	defer clear(key)
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return wrap(exitFailed, "no randomness", err)
	}
	cred := recoveryPrefix + contracts.EncodeBase64URL(raw)
	clear(raw)
	now := time.Now()
	file, err := marshalRecoveryFile(key, cred, now)
	if err != nil {
		return wrap(exitFailed, "cannot make the recovery file", err)
	}
	path := filepath.Join(*dir, recoveryFileName)
	if _, err := os.Stat(path); err == nil {
		fmt.Fprintf(e.stderr, "talos: replacing %s: its credential no longer works\n", path)
	}
	if err := writeFileAtomic(path, file, 0o600); err != nil {
		return wrap(exitIO, "cannot write the recovery file", err)
	}
	expires := now.Add(recoveryValidFor).UTC().Format(time.RFC3339)
	return e.emit(jsonOut(fs), map[string]any{"ok": true, "credential": cred, "file": path, "expires_at": expires}, func(o io.Writer) {
		fmt.Fprintln(o, cred)
		fmt.Fprintf(e.stderr, "talos: wrote %s; the credential above is shown once and works once, until %s:\n"+
			"  talos admin bootstrap --credential-file FILE --wallet NEW-OWNER-WALLET\n", path, expires)
	})
}
