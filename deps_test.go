package talos_test

import (
	"os/exec"
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
