package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestBinary builds the command and runs it as a user would: exit codes,
// stdout/stderr and the environment passphrase come through the real
// process boundary.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "talos")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	talos := func(env []string, args ...string) (int, string, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdin = strings.NewReader("")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, out.String(), errb.String()
		case errors.As(err, &ee):
			return ee.ExitCode(), out.String(), errb.String()
		}
		t.Fatal(err)
		return 0, "", ""
	}

	if code, out, _ := talos(nil, "-h"); code != exitOK || !strings.Contains(out, "audit verify") {
		t.Fatalf("-h: %d %q", code, out)
	}
	if code, _, _ := talos(nil, "token", "verify"); code != exitUsage {
		t.Fatalf("usage: exit %d", code)
	}
	wallet := filepath.Join(dir, "w.json")
	pass := []string{passEnv + "=binary test passphrase"}
	if code, out, errs := talos(pass, "keygen", "--out", wallet, "--scrypt-log-n", "14"); code != exitOK || !strings.HasPrefix(out, "did:key:z") {
		t.Fatalf("keygen: %d %q %q", code, out, errs)
	}
	if code, _, _ := talos([]string{passEnv + "=wrong"}, "did", "--check", wallet); code != exitWallet {
		t.Fatalf("wrong passphrase: exit %d", code)
	}

	l := newTestLog(t, t.TempDir())
	l.grow(t, 0, 260, 0)
	if code, out, errs := talos(nil, "audit", "verify", "--no-state", "--log-key", l.vkey, l.dir); code != exitOK || !strings.Contains(out, "size 260") {
		t.Fatalf("audit verify: %d %q %q", code, out, errs)
	}
	bad := copyLog(t, l.dir)
	p := filepath.Join(bad, "tile", "entries", "001.p", "4")
	es := bundleEntries(t, p)
	es[0] = bytes.Replace(es[0], []byte(`"req-256"`), []byte(`"req-652"`), 1)
	writeBundle(t, p, es)
	if code, _, errs := talos(nil, "audit", "verify", "--no-state", "--log-key", l.vkey, bad); code != exitFailed || !strings.Contains(errs, "entry 256") {
		t.Fatalf("tampered: %d %q", code, errs)
	}
}

// TestImports: the command imports only the standard library,
// golang.org/x and the library's own packages (no third-party dependency
// of its own in the root module).
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, imp := range strings.Fields(string(out)) {
		std := !strings.Contains(strings.SplitN(imp, "/", 2)[0], ".")
		if !std && !strings.HasPrefix(imp, "golang.org/x/") && !strings.HasPrefix(imp, "github.com/talosgo/talos/") {
			t.Errorf("cmd/talos imports %s", imp)
		}
	}
}
