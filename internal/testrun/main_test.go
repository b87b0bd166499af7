package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestSummary(t *testing.T) {
	evs := []event{
		{Action: "output", Package: "p", Test: "TestA", Output: "=== RUN   TestA\n"},
		{Action: "pass", Package: "p", Test: "TestA"},
		{Action: "output", Package: "p", Test: "TestB", Output: "=== RUN   TestB\n"},
		{Action: "output", Package: "p", Test: "TestB", Output: "    b_test.go:9: no PostgreSQL: set TALOS_TEST_POSTGRES_URL\n"},
		{Action: "output", Package: "p", Test: "TestB", Output: "--- SKIP: TestB (0.00s)\n"},
		{Action: "skip", Package: "p", Test: "TestB"},
		{Action: "output", Package: "p", Test: "TestC", Output: "    c_test.go:3: boom\n"},
		{Action: "fail", Package: "p", Test: "TestC"},
		{Action: "fail", Package: "p", Elapsed: 0.5},
		{Action: "skip", Package: "q"},
	}
	var out bytes.Buffer
	s := newSummary(&out, false)
	for _, ev := range evs {
		b, _ := json.Marshal(ev) // the same shape go test -json writes
		var back event
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		s.add(back)
	}
	if rc := s.finish(&out, nil, 0); rc != 1 {
		t.Errorf("exit %d with a failed test, want 1", rc)
	}
	got := out.String()
	for _, want := range []string{
		"c_test.go:3: boom",
		"FAIL p 0.5s",
		"?    q [no test files]",
		"p TestB: b_test.go:9: no PostgreSQL: set TALOS_TEST_POSTGRES_URL",
		"FAILED p TestC",
		"\ntests: 1 passed, 1 failed, 1 skipped\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if !strings.HasSuffix(got, "tests: 1 passed, 1 failed, 1 skipped\n") {
		t.Errorf("the counts are not the last line:\n%s", got)
	}
}

func TestSummaryPassAndGoFailure(t *testing.T) {
	var out bytes.Buffer
	s := newSummary(&out, false)
	s.add(event{Action: "pass", Package: "p", Test: "TestA"})
	if rc := s.finish(&out, nil, 0); rc != 0 {
		t.Errorf("exit %d, want 0", rc)
	}
	s = newSummary(&out, false)
	s.add(event{Action: "pass", Package: "p", Test: "TestA"})
	if rc := s.finish(&out, errors.New("exit status 2"), 0); rc != 1 {
		t.Errorf("go test failing (a build error) gave exit %d, want 1", rc)
	}
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run([]string{"-nosuchflag"}, &out, &errb); rc != 2 {
		t.Errorf("bad flag: exit %d, want 2", rc)
	}
}
