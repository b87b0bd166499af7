package contracts_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/talosgo/talos/contracts"
)

var errGone = contracts.NewSentinel(contracts.CodeNotFound, "test: gone")

// TestSentinelImmutable checks that what a caller can do with a sentinel
// (errors.As it, change the *Error it gets, wrap it) never changes the
// sentinel or what later errors of it say.
func TestSentinelImmutable(t *testing.T) {
	var e *contracts.Error
	if !errors.As(errGone, &e) {
		t.Fatal("errors.As(sentinel, **Error) failed")
	}
	if e.Code != contracts.CodeNotFound || e.Message != "test: gone" {
		t.Fatalf("As gave %+v", e)
	}
	e.Message, e.Code, e.Retryable = "mutated", contracts.CodeInternal, true
	if errGone.Message() != "test: gone" || errGone.Code() != contracts.CodeNotFound || errGone.Retryable() {
		t.Fatalf("changing the As result changed the sentinel: %v", errGone)
	}
	var e2 *contracts.Error
	if !errors.As(fmt.Errorf("ctx: %w", errGone), &e2) || e2 == e || e2.Message != "test: gone" {
		t.Fatalf("a later As gave %+v (the earlier one is %p)", e2, e)
	}
	n := errGone.New()
	n.Message = "changed"
	if errGone.Error() != "NOT_FOUND: test: gone" || !errors.Is(n, errGone) {
		t.Fatalf("New: %v / %v", errGone, n)
	}
	// WithRetryable returns a copy.
	r := errGone.WithRetryable(true)
	if errGone.Retryable() || !r.Retryable() || errors.Is(r, errGone) {
		t.Fatalf("WithRetryable: %v %v", errGone.Retryable(), r.Retryable())
	}
}

// TestSentinelIsAs covers errors.Is and As between sentinels, code-only
// sentinels, *Error values and wrapped chains.
func TestSentinelIsAs(t *testing.T) {
	other := contracts.NewSentinel(contracts.CodeNotFound, "test: other")
	wrapped := fmt.Errorf("op: %w", errGone)
	cases := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"self", errGone, errGone, true},
		{"wrapped", wrapped, errGone, true},
		{"code sentinel", errGone, contracts.ErrNotFound, true},
		{"code sentinel through wrap", wrapped, contracts.ErrNotFound, true},
		{"other code", errGone, contracts.ErrInternal, false},
		{"same code other message", errGone, other, false},
		{"New", errGone.New(), errGone, true},
		{"Wrap with cause", errGone.Wrap("test: gone here", errors.New("io")), errGone, true},
		{"Error of the code", contracts.New(contracts.CodeNotFound, "x"), contracts.ErrNotFound, true},
		{"Error not the message sentinel", contracts.New(contracts.CodeNotFound, "test: gone"), errGone, false},
		{"code-only *Error target", errGone, &contracts.Error{Code: contracts.CodeNotFound}, true},
		{"joined", errors.Join(errors.New("a"), errGone), errGone, true},
	}
	for _, c := range cases {
		if got := errors.Is(c.err, c.target); got != c.want {
			t.Errorf("%s: errors.Is(%v, %v) = %v, want %v", c.name, c.err, c.target, got, c.want)
		}
	}
	cause := errors.New("disk")
	w := errGone.Wrap("test: gone: disk", cause)
	if !errors.Is(w, cause) || w.Code != contracts.CodeNotFound || w.Message != "test: gone: disk" {
		t.Fatalf("Wrap = %+v", w)
	}
	if got := contracts.CodeOf(fmt.Errorf("x: %w", errors.Join(errors.New("y"), errGone))); got != contracts.CodeNotFound {
		t.Fatalf("CodeOf through a join = %q", got)
	}
	if got := contracts.CodeOf(errors.New("plain")); got != contracts.CodeInternal {
		t.Fatalf("CodeOf(plain) = %q", got)
	}
	if got := contracts.CodeOf((*contracts.Error)(nil)); got != contracts.CodeInternal {
		t.Fatalf("CodeOf(nil *Error) = %q", got)
	}
}

// TestSentinelJSON checks that a sentinel encodes as the contract error
// object, as the *Error it stands for does.
func TestSentinelJSON(t *testing.T) {
	a, err := json.Marshal(errGone.WithRetryable(true))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(errGone.WithRetryable(true).New())
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != `{"code":"NOT_FOUND","message":"test: gone","retryable":true}` || string(a) != string(b) {
		t.Fatalf("sentinel JSON %s, *Error JSON %s", a, b)
	}
}

// TestNewDoesNotFormat: New uses the message as given.
func TestNewDoesNotFormat(t *testing.T) {
	if e := contracts.New(contracts.CodeInvalidInput, "100% %s"); e.Message != "100% %s" || e.Error() != "TALOS_INVALID_INPUT: 100% %s" {
		t.Fatalf("New = %q", e.Error())
	}
}

func BenchmarkCodeOfSentinel(b *testing.B) {
	err := fmt.Errorf("x: %w", errGone)
	b.ReportAllocs()
	for b.Loop() {
		if contracts.CodeOf(err) != contracts.CodeNotFound {
			b.Fatal("code")
		}
	}
}

func ExampleNewSentinel() {
	// A package declares its errors as sentinels ...
	errQuota := contracts.NewSentinel(contracts.CodeRateLimited, "mypkg: quota exhausted").WithRetryable(true)
	// ... returns them, possibly wrapped ...
	err := fmt.Errorf("upload: %w", errQuota)
	// ... and callers branch with errors.Is, or read the contract error.
	var ce *contracts.Error
	fmt.Println(errors.Is(err, errQuota), errors.Is(err, contracts.ErrRateLimited))
	fmt.Println(errors.As(err, &ce), ce.Code, ce.Retryable, contracts.HTTPStatus(ce.Code))
	// Output:
	// true true
	// true RATE_LIMITED true 429
}
