package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/secrets"
	"github.com/talosgo/talos/identity"
)

// The master key file and the ids of the bootstrap secrets.
const (
	masterKeyFile      = "master.key"
	secretsFileName    = "secrets.json"
	identitySeedSecret = "server/identity-seed"
	adminHashSecret    = "server/admin-bootstrap-sha256"
	adminCredentialPfx = admin.BootstrapPrefix
)

// prepareDataDir creates the data directory 0700, refuses one that other
// users can write to (they could have planted or swapped files in it), and
// tightens one that they can only read or enter to 0700: it holds the sealed
// secrets, the audit entries and, without TALOS_MASTER_KEY, the master key.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", dir)
	}
	perm := st.Mode().Perm()
	if perm&0o022 != 0 {
		return fmt.Errorf("data directory %s is writable by other users (mode %v); chmod 700 it", dir, perm)
	}
	if perm&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("data directory %s is readable by other users (mode %v) and cannot be tightened: %w", dir, perm, err)
		}
	}
	return nil
}

// loadMasterKey returns the master KEK: cfg.MasterKey when set, otherwise
// the key in DataDir/master.key, generated (O_EXCL, 0600) on first start.
// Production mode never reaches the file (Config.validate requires the
// environment variable).
//
// The trade-off of the file: a key stored beside the data it protects only
// protects copies of the sealed data made without the key file (a database
// dump, a backup of secrets.json alone). Anyone who can read the data
// directory can open every secret. Set TALOS_MASTER_KEY from a secret
// manager so the key never touches the disk.
func loadMasterKey(cfg Config) (key []byte, generated bool, err error) {
	if len(cfg.MasterKey) != 0 {
		return cfg.MasterKey, false, nil
	}
	if cfg.Production {
		return nil, false, errors.New("production mode requires " + masterKeyEnv)
	}
	path := filepath.Join(cfg.DataDir, masterKeyFile)
	key, err = readMasterKeyFile(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	key = make([]byte, identity.KEKSize)
	if _, err := rand.Read(key); err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process created it first: use theirs.
		key, err = readMasterKeyFile(path)
		return key, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("master key file: %w", err)
	}
	_, werr := io.WriteString(f, contracts.EncodeBase64URL(key)+"\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("master key file: %w", err)
	}
	return key, true, nil
}

func readMasterKeyFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("master key file %s is readable by other users (mode %v); chmod 600 it", path, st.Mode().Perm())
	}
	raw, err := readLimited(path, 256)
	if err != nil {
		return nil, fmt.Errorf("master key file: %w", err)
	}
	key, err := contracts.DecodeBase64URL(strings.TrimSpace(string(raw)))
	if err != nil || len(key) != identity.KEKSize {
		return nil, fmt.Errorf("master key file %s does not hold 32 bytes in unpadded base64url", path)
	}
	return key, nil
}

// loadIdentity returns the server wallet, creating its seed on first start.
func loadIdentity(ctx context.Context, sec *secrets.Vault) (*identity.Wallet, error) {
	seed, err := sec.Get(ctx, identitySeedSecret)
	if errors.Is(err, contracts.ErrNotFound) {
		fresh := make([]byte, 32)
		if _, err := rand.Read(fresh); err != nil {
			return nil, err
		}
		if _, err := sec.Create(ctx, identitySeedSecret, fresh); err != nil {
			return nil, err
		}
		clear(fresh)
		// Read back: a replica starting at the same time may have won.
		seed, err = sec.Get(ctx, identitySeedSecret)
	}
	if err != nil {
		return nil, fmt.Errorf("server identity: %w", err)
	}
	defer clear(seed)
	return identity.WalletFromSeed(seed)
}

// bootstrapAdmin creates the one-time admin bootstrap credential on first
// start (gateway/admin.Bootstrap): it returns the credential only when this
// call created it (print it once), and the SHA-256 of the stored credential.
// The credential authenticates only POST /v1/admin/bootstrap, while no
// owner exists (gateway/admin spends it on the first owner).
func bootstrapAdmin(ctx context.Context, sec *secrets.Vault) (credential string, hash [32]byte, err error) {
	return admin.Bootstrap(ctx, sec, adminHashSecret)
}

// checkAdminCredential compares a presented credential with the stored hash
// in constant time.
func checkAdminCredential(presented string, hash [32]byte) bool {
	return admin.CheckBootstrap(presented, hash)
}
