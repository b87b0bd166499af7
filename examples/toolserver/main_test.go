package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestToolserver runs the example and checks what the agent saw: the public
// route, the allowed read and the denied run.
func TestToolserver(t *testing.T) {
	var out bytes.Buffer
	run(&out)
	want := `GET /health: 200 ok
GET /tools/grep: 200 tool grep
POST /tools/grep/run: 403 {"code":"TALOS_DENIED","message":"request denied: TALOS_DENIED","retryable":false}
`
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

// TestToolserverSize keeps the example under 60 lines of code (blank and
// comment lines not counted).
func TestToolserverSize(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(src), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "//") {
			n++
		}
	}
	if n >= 60 {
		t.Fatalf("main.go has %d lines of code, want under 60", n)
	}
}
