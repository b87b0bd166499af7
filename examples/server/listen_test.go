package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTakenPortCreatesNothing: with the listen address taken, the server
// exits 1 before it creates its data directory or prints a credential.
func TestTakenPortCreatesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := filepath.Join(t.TempDir(), "data")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-data", dir, "-listen", taken.Addr().String(), "-trace-exporter", "none"},
		func(string) string { return "" }, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit code %d, want 1; stderr:\n%s", code, stderr.String())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("data directory exists after a failed bind: %v", err)
	}
	if strings.Contains(stdout.String(), adminCredentialPfx) || strings.Contains(stdout.String(), "DID") {
		t.Fatalf("printed for a server that never served:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "listen") {
		t.Fatalf("stderr does not say why:\n%s", stderr.String())
	}
}
