// Command testrun is the repository's test command: it runs the tests of
// every module of the workspace (go.work) and ends with a summary that says
// how many tests passed, failed and were skipped, and why each skipped test
// skipped.
//
// Usage, from the repository root:
//
//	go run ./internal/testrun [-race] [-short] [-v] [-timeout 20m] [-run RE] [packages]
//
// The packages default to <module>/... for every module of the workspace
// (go list -m: each module listed in go.work); ./... alone would stop at the
// first nested go.mod and leave the gateway and example modules untested.
// testrun runs go test -json and prints one line per
// package (ok / FAIL / no test files), the output of every failing test, and
// then the summary; the last line is "tests: N passed, N failed, N skipped".
// It exits 1 if any test or package failed (or if go test itself failed), and
// 2 on a usage error.
//
// With TALOS_REQUIRE_CONTRACTS=1 and TALOS_REQUIRE_SERVICES=1 (as .ci/run
// sets them) conformance and back-end tests fail instead of skipping; the
// skips that remain are listed with their reasons.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

// event is one line of go test -json (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

type testKey struct{ pkg, test string }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("testrun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	race := fs.Bool("race", false, "run with the race detector")
	short := fs.Bool("short", false, "pass -short to go test")
	verbose := fs.Bool("v", false, "print every test's output, not only failing ones'")
	timeout := fs.String("timeout", "20m", "go test -timeout")
	runRE := fs.String("run", "", "go test -run")
	count := fs.Int("count", 1, "go test -count (1 disables the test cache)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	pkgs := fs.Args()
	if len(pkgs) == 0 {
		mods, err := workspaceModules()
		if err != nil {
			fmt.Fprintln(os.Stderr, "testrun:", err)
			return 1
		}
		for _, m := range mods {
			pkgs = append(pkgs, m+"/...")
		}
	}
	goArgs := []string{"test", "-json", "-timeout", *timeout, fmt.Sprintf("-count=%d", *count)}
	if *race {
		goArgs = append(goArgs, "-race")
	}
	if *short {
		goArgs = append(goArgs, "-short")
	}
	if *runRE != "" {
		goArgs = append(goArgs, "-run", *runRE)
	}
	goArgs = append(goArgs, pkgs...)

	cmd := exec.Command("go", goArgs...)
	cmd.Stderr = stderr // build errors and vet findings
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(stderr, "testrun:", err)
		return 1
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "testrun:", err)
		return 1
	}
	s := newSummary(stdout, *verbose)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			fmt.Fprintln(stdout, sc.Text()) // not test2json: pass it on
			continue
		}
		s.add(ev)
	}
	waitErr := cmd.Wait()
	return s.finish(stdout, waitErr, time.Since(start))
}

type summary struct {
	w       io.Writer
	verbose bool
	output  map[testKey][]string // buffered output per test (and per package, test "")
	passed  int
	failed  []testKey
	skipped []testKey
	reasons map[testKey]string
	pkgFail []string
}

func newSummary(w io.Writer, verbose bool) *summary {
	return &summary{w: w, verbose: verbose, output: map[testKey][]string{}, reasons: map[testKey]string{}}
}

func (s *summary) add(ev event) {
	k := testKey{ev.Package, ev.Test}
	switch ev.Action {
	case "output":
		if s.verbose {
			fmt.Fprint(s.w, ev.Output)
		}
		s.output[k] = append(s.output[k], ev.Output)
	case "pass", "fail", "skip":
		if ev.Test == "" {
			s.pkgDone(ev)
			return
		}
		switch ev.Action {
		case "pass":
			s.passed++
		case "fail":
			s.failed = append(s.failed, k)
			if !s.verbose {
				for _, line := range s.output[k] {
					fmt.Fprint(s.w, line)
				}
			}
		case "skip":
			s.skipped = append(s.skipped, k)
			s.reasons[k] = skipReason(s.output[k])
		}
		delete(s.output, k)
	}
}

func (s *summary) pkgDone(ev event) {
	k := testKey{ev.Package, ""}
	lines := s.output[k]
	delete(s.output, k)
	switch ev.Action {
	case "pass":
		fmt.Fprintf(s.w, "ok   %s %.1fs\n", ev.Package, ev.Elapsed)
	case "skip":
		fmt.Fprintf(s.w, "?    %s [no test files]\n", ev.Package)
	case "fail":
		s.pkgFail = append(s.pkgFail, ev.Package)
		if !s.verbose {
			// Package-level output: a panic, a build failure, TestMain.
			for _, line := range lines {
				if !strings.HasPrefix(line, "=== ") {
					fmt.Fprint(s.w, line)
				}
			}
		}
		fmt.Fprintf(s.w, "FAIL %s %.1fs\n", ev.Package, ev.Elapsed)
	}
}

// skipReason extracts the message of t.Skip from a skipped test's output:
// the lines after "=== RUN" that are not the "--- SKIP" line itself.
func skipReason(lines []string) string {
	var parts []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		parts = append(parts, t)
	}
	r := strings.Join(parts, " ")
	if len(r) > 200 {
		r = r[:200] + "…"
	}
	if r == "" {
		r = "(no reason given)"
	}
	return r
}

func (s *summary) finish(w io.Writer, waitErr error, took time.Duration) int {
	fmt.Fprintf(w, "\n=== summary (%s)\n", took.Round(time.Second))
	if len(s.skipped) > 0 {
		fmt.Fprintf(w, "skipped tests and why:\n")
		sort.Slice(s.skipped, func(i, j int) bool {
			a, b := s.skipped[i], s.skipped[j]
			if a.pkg != b.pkg {
				return a.pkg < b.pkg
			}
			return a.test < b.test
		})
		for _, k := range s.skipped {
			fmt.Fprintf(w, "  %s %s: %s\n", k.pkg, k.test, s.reasons[k])
		}
	}
	for _, k := range s.failed {
		fmt.Fprintf(w, "FAILED %s %s\n", k.pkg, k.test)
	}
	for _, p := range s.pkgFail {
		fmt.Fprintf(w, "FAILED package %s\n", p)
	}
	fmt.Fprintf(w, "tests: %d passed, %d failed, %d skipped\n", s.passed, len(s.failed), len(s.skipped))
	if waitErr != nil || len(s.failed) > 0 || len(s.pkgFail) > 0 {
		return 1
	}
	return 0
}

// workspaceModules lists the module paths of the workspace (go list -m),
// which must be more than one when a go.work is in effect.
func workspaceModules() ([]string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Path}}").Output()
	if err != nil {
		return nil, fmt.Errorf("go list -m: %w", err)
	}
	mods := strings.Fields(string(out))
	if len(mods) == 0 {
		return nil, errors.New("go list -m listed no module")
	}
	return mods, nil
}
