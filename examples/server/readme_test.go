package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestREADMESettings keeps the README's configuration table identical to
// the one the server prints with -h.
func TestREADMESettings(t *testing.T) {
	if !strings.Contains(readme(t), strings.TrimSpace(settingsMarkdown())) {
		t.Fatalf("README.md does not contain the current settings table; paste the output of `go run ./examples/server -h`:\n%s", settingsMarkdown())
	}
}

// TestREADMECurl runs the README's curl examples, exactly as written, with
// bash against a live server on embedded defaults. Every command must
// succeed (curl -f fails on an HTTP error status).
func TestREADMECurl(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "sed", "tee"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the README examples: %v", tool, err)
		}
	}
	text := readme(t)
	_, block, ok := strings.Cut(text, "<!-- curl-test -->\n```sh\n")
	if !ok {
		t.Fatal("README has no <!-- curl-test --> block")
	}
	block, _, _ = strings.Cut(block, "```")

	ts := newTestServer(t, testConfig(t))
	ts.serve(t)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "TALOS="+ts.url, "ADMIN="+ts.cred)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README curl examples failed: %v\n%s", err, out)
	}
	for _, want := range []string{`"status":"ok"`, `"capability_hash":"`, `"revoked":true`, `"limit_usd":"5"`, `"proof":[`, "talos.local/audit\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
