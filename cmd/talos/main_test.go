package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/talosgo/talos/identity"
)

// result is one in-process run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the CLI in-process with a fixed environment and no terminal.
type cli struct {
	t     *testing.T
	env   map[string]string
	stdin string
}

func newCLI(t *testing.T) *cli { return &cli{t: t, env: map[string]string{}} }

func (c *cli) run(args ...string) result {
	c.t.Helper()
	var out, errb bytes.Buffer
	e := &env{
		ctx: context.Background(), stdin: strings.NewReader(c.stdin), stdout: &out, stderr: &errb,
		getenv: func(k string) string { return c.env[k] },
	}
	code := e.run(args)
	c.stdin = ""
	return result{code, out.String(), errb.String()}
}

// must runs and requires exit code want.
func (c *cli) must(want int, args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != want {
		c.t.Fatalf("talos %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
	}
	return r
}

func decodeJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return m
}

func TestTopLevel(t *testing.T) {
	c := newCLI(t)
	if r := c.must(exitUsage); !strings.Contains(r.stderr, "Usage: talos") {
		t.Fatalf("no usage: %q", r.stderr)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"-h"}, strings.NewReader(""), &out, &errb); code != exitOK {
		t.Fatalf("-h: exit %d", code)
	}
	r := result{stdout: out.String()}
	for _, cmd := range commands() {
		if !strings.Contains(r.stdout, cmd.name) {
			t.Errorf("help does not list %q", cmd.name)
		}
	}
	if r := c.must(exitUsage, "frobnicate"); !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Fatalf("stderr %q", r.stderr)
	}
	if r := c.must(exitUsage, "audit"); !strings.Contains(r.stderr, "audit verify") {
		t.Fatalf("stderr %q", r.stderr)
	}
	// -h on every command prints its usage on stdout and exits 0; a bad
	// flag is a usage error.
	for _, cmd := range commands() {
		args := append(strings.Fields(cmd.name), "-h")
		r := c.must(exitOK, args...)
		if !strings.HasPrefix(r.stdout, "Usage: talos "+cmd.name) || !strings.Contains(r.stdout, "--json") || !strings.Contains(r.stdout, "Exit codes") {
			t.Errorf("%s -h: %q", cmd.name, r.stdout)
		}
		args = append(strings.Fields(cmd.name), "--no-such-flag")
		if r := c.must(exitUsage, args...); !strings.Contains(r.stderr, "no-such-flag") {
			t.Errorf("%s --no-such-flag: %q", cmd.name, r.stderr)
		}
	}
}

// keygen writes a wallet and returns its path and DID.
func keygen(t *testing.T, c *cli, dir, name string, plain bool) (string, string) {
	t.Helper()
	path := filepath.Join(dir, name+".json")
	args := []string{"keygen", "--json", "--out", path, "--name", name}
	if plain {
		args = append(args, "--plain")
	} else {
		args = append(args, "--scrypt-log-n", "14")
	}
	r := c.must(exitOK, args...)
	m := decodeJSON(t, r.stdout)
	if m["sealed"] != !plain || m["file"] != path {
		t.Fatalf("keygen output %v", m)
	}
	return path, m["did"].(string)
}

func TestKeygenAndDID(t *testing.T) {
	dir := t.TempDir()
	c := newCLI(t)

	// Plain: a warning, mode 0600, the DID printed.
	plain, plainDID := keygen(t, c, dir, "alice", true)
	if st, err := os.Stat(plain); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	r := c.must(exitOK, "did", "--json", "--origin", "example.com/log", plain)
	m := decodeJSON(t, r.stdout)
	if m["did"] != plainDID || m["name"] != "alice" || !strings.HasPrefix(m["verifier_key"].(string), "example.com/log+") {
		t.Fatalf("did output %v", m)
	}
	if r := c.must(exitOK, "did", plainDID); !strings.Contains(r.stdout, plainDID) {
		t.Fatalf("did of a did:key: %q", r.stdout)
	}
	c.must(exitIO, "keygen", "--plain", "--out", plain) // refuses to overwrite

	// Sealed, passphrase from the environment.
	c.env[passEnv] = "correct horse"
	sealed, sealedDID := keygen(t, c, dir, "bob", false)
	raw, _ := os.ReadFile(sealed)
	if bytes.Contains(raw, []byte("seed")) || !bytes.Contains(raw, []byte(`"sealed"`)) {
		t.Fatalf("sealed file holds a seed member: %s", raw)
	}
	c.must(exitOK, "did", "--check", sealed)
	c.env[passEnv] = "wrong"
	if r := c.must(exitWallet, "did", "--check", sealed); !strings.Contains(r.stderr, "wrong passphrase") || strings.Contains(r.stderr, "correct horse") {
		t.Fatalf("stderr %q", r.stderr)
	}
	// Passphrase from a file (its first line), which wins over the environment.
	pf := filepath.Join(dir, "pass")
	os.WriteFile(pf, []byte("correct horse\n"), 0o600)
	c.must(exitOK, "did", "--check", "--passphrase-file", pf, sealed)
	// No passphrase source at all: exit 4, a clear message.
	delete(c.env, passEnv)
	if r := c.must(exitWallet, "did", "--check", sealed); !strings.Contains(r.stderr, "no passphrase") {
		t.Fatalf("stderr %q", r.stderr)
	}
	if r := c.must(exitOK, "did", sealed); !strings.Contains(r.stdout, sealedDID) {
		t.Fatalf("stdout %q", r.stdout)
	}

	// A renamed sealed wallet (name is bound by the AEAD) does not open.
	f, err := parseWalletFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	f.Name = "mallory"
	renamed, _ := f.encode()
	os.WriteFile(sealed, renamed, 0o600)
	c.must(exitWallet, "did", "--check", "--passphrase-file", pf, sealed)
	// A non-canonical file (extra space) is refused before anything.
	os.WriteFile(sealed, append([]byte(" "), raw...), 0o600)
	if r := c.must(exitWallet, "did", sealed); !strings.Contains(r.stderr, "wallet file") {
		t.Fatalf("stderr %q", r.stderr)
	}
}

func TestWalletFileRoundTrip(t *testing.T) {
	for _, sealedWallet := range []bool{false, true} {
		w := mustWallet(t)
		var pass []byte
		if sealedWallet {
			pass = []byte("pw")
		}
		b, err := sealWallet(w, pass, minLogN)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parseWalletFile(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.open(pass)
		if err != nil || !got.Equal(w) {
			t.Fatalf("open: %v", err)
		}
		if sealedWallet {
			if _, err := f.open([]byte("other")); err != errWrongPassphrase {
				t.Fatalf("wrong passphrase: %v", err)
			}
		}
	}
}

// FuzzParseWalletFile: the parser never panics, every accepted file is in
// its one canonical encoding, and a plain accepted file opens to the DID
// it names.
func FuzzParseWalletFile(f *testing.F) {
	w := mustWallet(f)
	for _, pass := range [][]byte{nil, []byte("pw")} {
		b, err := sealWallet(w, pass, minLogN)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(bytes.TrimSuffix(b, []byte("\n")))
	}
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		wf, err := parseWalletFile(b)
		if err != nil {
			return
		}
		again, err := wf.encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted a non-canonical encoding:\n%q\n%q", b, again)
		}
		if !wf.isSealed() {
			got, err := wf.open(nil)
			if err == nil && got.DID().String() != wf.DID {
				t.Fatalf("opened to another DID")
			}
		}
	})
}

func mustWallet(t testing.TB) *identity.Wallet {
	t.Helper()
	w, err := identity.GenerateWallet("test")
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// fakeTTY is a terminal that answers prompts from a script.
type fakeTTY struct {
	io.Reader
	prompts bytes.Buffer
}

func (f *fakeTTY) Write(p []byte) (int, error) { return f.prompts.Write(p) }
func (f *fakeTTY) Close() error                { return nil }

func TestPassphrasePrompt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.json")
	var tty *fakeTTY
	runWith := func(answers string, args ...string) result {
		tty = &fakeTTY{Reader: strings.NewReader(answers)}
		var out, errb bytes.Buffer
		e := &env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
			getenv: func(string) string { return "" }, tty: func() (io.ReadWriteCloser, error) { return tty, nil }}
		return result{e.run(args), out.String(), errb.String()}
	}
	if r := runWith("one\ntwo\n", "keygen", "--out", path, "--scrypt-log-n", "14"); r.code != exitWallet || !strings.Contains(r.stderr, "differ") {
		t.Fatalf("mismatch: %d %s", r.code, r.stderr)
	}
	if r := runWith("\n\n", "keygen", "--out", path, "--scrypt-log-n", "14"); r.code != exitWallet || !strings.Contains(r.stderr, "empty passphrase") {
		t.Fatalf("empty: %d %s", r.code, r.stderr)
	}
	if r := runWith("s3cret\ns3cret\n", "keygen", "--out", path, "--scrypt-log-n", "14"); r.code != exitOK {
		t.Fatalf("keygen: %d %s", r.code, r.stderr)
	}
	if !strings.Contains(tty.prompts.String(), "Repeat passphrase") {
		t.Fatalf("prompts %q", tty.prompts.String())
	}
	if r := runWith("s3cret\n", "did", "--check", path); r.code != exitOK {
		t.Fatalf("open: %d %s", r.code, r.stderr)
	}
	if strings.Contains(tty.prompts.String(), "s3cret") {
		t.Fatal("the passphrase was echoed by the CLI")
	}
	if r := runWith("nope\n", "did", "--check", path); r.code != exitWallet {
		t.Fatalf("wrong: %d %s", r.code, r.stderr)
	}
}
