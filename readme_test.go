package talos_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestREADMEQuickstart checks that the README's quickstart is exactly
// examples/quickstart/main.go, and that it runs and prints what the README
// says it prints.
func TestREADMEQuickstart(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("examples/quickstart/main.go")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	_, after, ok := strings.Cut(text, "## Quickstart")
	if !ok {
		t.Fatal("README has no Quickstart section")
	}
	_, code, ok := strings.Cut(after, "```go\n")
	if !ok {
		t.Fatal("Quickstart has no go code block")
	}
	code, rest, _ := strings.Cut(code, "```")
	if code != string(src) {
		t.Fatal("README quickstart differs from examples/quickstart/main.go")
	}
	_, want, ok := strings.Cut(rest, "```text\n")
	if !ok {
		t.Fatal("Quickstart has no output block")
	}
	want, _, _ = strings.Cut(want, "```")
	if testing.Short() {
		t.Skip("-short: not running the quickstart")
	}
	out, err := exec.Command("go", "run", "./examples/quickstart").CombinedOutput()
	if err != nil {
		t.Fatalf("go run ./examples/quickstart: %v\n%s", err, out)
	}
	if string(out) != want {
		t.Fatalf("quickstart printed:\n%s\nREADME says:\n%s", out, want)
	}
}

// TestREADMEMiddleware checks that the code lines of the block of the README's "Protecting
// your own routes" section is taken from examples/toolserver/main.go (which
// TestToolserver runs): every line of it appears there, in order.
func TestREADMEMiddleware(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("examples/toolserver/main.go")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "## Protecting your own routes")
	if !ok {
		t.Fatal("README has no middleware section")
	}
	_, code, ok := strings.Cut(after, "```go\n")
	if !ok {
		t.Fatal("the middleware section has no go code block")
	}
	code, _, _ = strings.Cut(code, "```")
	rest := string(src)
	for _, line := range strings.Split(strings.TrimSpace(code), "\n") {
		if l := strings.TrimSpace(line); l == "" || strings.HasPrefix(l, "//") {
			continue // blank lines and the README's own comments
		}
		i := strings.Index(rest, strings.TrimSpace(line))
		if i < 0 {
			t.Fatalf("README line %q is not in examples/toolserver/main.go (in order)", line)
		}
		rest = rest[i+len(strings.TrimSpace(line)):]
	}
}
