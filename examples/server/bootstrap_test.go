package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
)

func TestFirstStartThenRestart(t *testing.T) {
	cfg := testConfig(t)
	first := newTestServer(t, cfg)
	did := first.DID()
	if first.cred == "" || !strings.Contains(first.out.String(), did.String()) {
		t.Fatalf("first start printed %q", first.out.String())
	}
	st, err := os.Stat(filepath.Join(cfg.DataDir, masterKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("master key file: %v %v", st, err)
	}
	if dst, _ := os.Stat(cfg.DataDir); dst.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode %v", dst.Mode().Perm())
	}
	raw, err := os.ReadFile(filepath.Join(cfg.DataDir, secretsFileName))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), first.bootstrap) || strings.Contains(string(raw), first.cred) {
		t.Fatal("the admin credential is stored in clear")
	}
	if admin, err := os.ReadFile(filepath.Join(cfg.DataDir, adminStateFile)); err != nil || strings.Contains(string(admin), first.cred) {
		t.Fatalf("the admin session token is stored in clear (%v)", err)
	}
	first.Close(context.Background())

	second := newTestServer(t, cfg)
	if second.DID() != did {
		t.Fatalf("DID changed across restarts: %s -> %s", did, second.DID())
	}
	if second.cred != "" || strings.Contains(second.out.String(), adminCredentialPfx) {
		t.Fatalf("restart printed a credential: %q", second.out.String())
	}
	// The first start's owner session still works; others do not.
	if st := decode(t, second.do(t, "GET", "/v1/config/budget/x/versions", first.cred, nil), nil); st != 404 {
		t.Fatalf("first credential after restart: %d", st)
	}
	if st := decode(t, second.do(t, "GET", "/v1/config/budget/x/versions", first.cred+"x", nil), nil); st != 401 {
		t.Fatalf("altered credential: %d", st)
	}
}

func TestMasterKeyFromEnvironment(t *testing.T) {
	cfg := testConfig(t)
	cfg.MasterKey = make([]byte, 32)
	cfg.MasterKey[0] = 7
	ts := newTestServer(t, cfg)
	if _, err := os.Stat(filepath.Join(cfg.DataDir, masterKeyFile)); !os.IsNotExist(err) {
		t.Fatalf("a master key file was written although the key came from the environment: %v", err)
	}
	ts.Close(context.Background())
	// Another key cannot open the stored KEKs: start-up fails, it does not
	// silently create a new identity.
	cfg.MasterKey = make([]byte, 32)
	cfg.stdout = &syncBuffer{}
	if _, err := New(t.Context(), cfg, nil); err == nil || !strings.Contains(err.Error(), masterKeyEnv) {
		t.Fatalf("wrong master key: %v", err)
	}
}

func TestMasterKeyFileChecks(t *testing.T) {
	cfg := testConfig(t)
	if err := prepareDataDir(cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.DataDir, masterKeyFile)
	os.WriteFile(path, []byte(contracts.EncodeBase64URL(make([]byte, 32))), 0o644)
	if _, _, err := loadMasterKey(cfg); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key file: %v", err)
	}
	os.Chmod(path, 0o600)
	os.WriteFile(path, []byte("short"), 0o600)
	if _, _, err := loadMasterKey(cfg); err == nil {
		t.Fatal("malformed key file accepted")
	}
	cfg.Production = true
	os.Remove(path)
	if _, _, err := loadMasterKey(cfg); err == nil {
		t.Fatal("production generated a key file")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("production wrote a key file")
	}
	other := t.TempDir() + "/open"
	os.MkdirAll(other, 0o777)
	os.Chmod(other, 0o777)
	if err := prepareDataDir(other); err == nil {
		t.Fatal("a world-writable data directory was accepted")
	}
}

func TestCheckAdminCredential(t *testing.T) {
	cfg := testConfig(t)
	ts := newTestServer(t, cfg)
	cred := ts.bootstrap
	for _, c := range []string{"", "talos_admin_", cred[:len(cred)-1], "Bearer " + cred, strings.ToUpper(cred)} {
		if checkAdminCredential(c, ts.adminHash) {
			t.Fatalf("accepted %q", c)
		}
	}
	if !checkAdminCredential(cred, ts.adminHash) {
		t.Fatal("rejected the real credential")
	}
}
