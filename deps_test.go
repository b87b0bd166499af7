package talos_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/talosgo/talos"

// allowedThirdParty lists the non-x/ modules core packages may import
// (ARCHITECTURE.md, "Dependencies").
var allowedThirdParty = []string{
	"github.com/gowebpki/jcs",
	"github.com/santhosh-tekuri/jsonschema/v5",
	"go.opentelemetry.io/otel",     // the API only; the SDK is checked below
	"github.com/cespare/xxhash/v2", // imported by the OTel attribute package
}

// TestCoreDeps enforces ARCHITECTURE.md, "Dependencies": core packages
// import the standard library, golang.org/x, jcs, jsonschema and the OTel API
// only; go-redis only under */redis, pgx only under */postgres; the OTel SDK
// and "testing" never from non-test library code.
func TestCoreDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		if strings.HasPrefix(rel, "examples") || strings.HasPrefix(rel, "internal/testenv") ||
			strings.HasPrefix(rel, "cmd/") || strings.HasSuffix(rel, "test") {
			continue // examples, commands and conformance suites may use more
		}
		deps, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		isRedis := strings.HasSuffix(rel, "/redis")
		isPostgres := strings.HasSuffix(rel, "/postgres")
		for _, dep := range strings.Fields(string(deps)) {
			switch {
			case dep == "testing":
				t.Errorf("%s imports testing", pkg)
			case strings.HasPrefix(dep, "go.opentelemetry.io/otel/sdk"):
				t.Errorf("%s imports the OTel SDK (%s)", pkg, dep)
			case !strings.Contains(strings.SplitN(dep, "/", 2)[0], "."):
				// standard library
			case strings.HasPrefix(dep, "golang.org/x/"), strings.HasPrefix(dep, module):
			case strings.HasPrefix(dep, "github.com/redis/go-redis/") || strings.HasPrefix(dep, "github.com/dgryski/go-rendezvous") || strings.HasPrefix(dep, "go.uber.org/atomic"):
				if !isRedis {
					t.Errorf("%s imports %s: go-redis is allowed only under */redis", pkg, dep)
				}
			case strings.HasPrefix(dep, "github.com/jackc/"):
				if !isPostgres {
					t.Errorf("%s imports %s: pgx is allowed only under */postgres", pkg, dep)
				}
			case allowed(dep), strings.HasPrefix(dep, "github.com/go-logr/"), strings.HasPrefix(dep, "go.opentelemetry.io/auto/sdk"):
			default:
				t.Errorf("%s imports %s: not allowed in library packages (ARCHITECTURE.md, Dependencies)", pkg, dep)
			}
		}
	}
}

func allowed(dep string) bool {
	for _, a := range allowedThirdParty {
		if dep == a || strings.HasPrefix(dep, a+"/") {
			return true
		}
	}
	return false
}

// maxAppModules bounds the module graph of an application that imports only
// capability and identity (go list -m all, the application itself included).
// Measured 2026-12-03: 23 (was 47 while examples/server's go-sdk, OTel SDK,
// OTLP exporter and grpc were requirements of this module), then 24 with
// the OTel metric API (go.opentelemetry.io/otel/metric: the Kernel, audit
// and ratchet metrics). Raise it only with a reason in DESIGN-NOTES.md.
const maxAppModules = 24

// forbiddenAppModules must never be in such an application's module graph:
// they belong to the gateway module and examples/server.
var forbiddenAppModules = []string{
	"github.com/modelcontextprotocol/go-sdk",
	"go.opentelemetry.io/otel/sdk",
	"go.opentelemetry.io/otel/exporters/",
	"google.golang.org/grpc",
}

// TestLeanModuleGraph builds a throwaway application that imports capability
// and identity from this checkout and pins the size of its module graph, so
// the root go.mod stays free of the server's choices.
func TestLeanModuleGraph(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module; skipped in -short")
	}
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/capapp\n\ngo 1.26.0\n\nrequire "+module+" v0.0.0\n\nreplace "+module+" => "+root+"\n")
	write("main.go", `package main

import (
	"fmt"

	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"
)

func main() { fmt.Println(capability.Token{}, identity.DID{}) }
`)
	run := func(args ...string) string {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("mod", "tidy")
	run("build", "-o", os.DevNull, ".")
	mods := strings.Split(strings.TrimSpace(run("list", "-m", "all")), "\n")
	for _, m := range mods {
		for _, f := range forbiddenAppModules {
			if strings.HasPrefix(m, f) {
				t.Errorf("module graph of a capability+identity app has %s", m)
			}
		}
	}
	if len(mods) > maxAppModules {
		t.Errorf("module graph of a capability+identity app has %d modules, want at most %d:\n%s",
			len(mods), maxAppModules, strings.Join(mods, "\n"))
	}
	t.Logf("%d modules", len(mods))
}
