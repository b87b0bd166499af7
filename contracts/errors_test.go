package contracts_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/testenv"
)

// TestHTTPStatusVectors checks HTTPStatus against ai_gateway/error_mapping.json.
func TestHTTPStatusVectors(t *testing.T) {
	var cases []struct {
		Description string
		Input       struct {
			ErrorCode string `json:"error_code"`
		}
		Expected struct {
			HTTPStatus int `json:"http_status"`
		}
	}
	if err := json.Unmarshal(testenv.ReadContract(t, "test_vectors/ai_gateway/error_mapping.json"), &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) != 6 {
		t.Fatalf("%d cases, want 6", len(cases))
	}
	for _, c := range cases {
		if got := contracts.HTTPStatus(contracts.Code(c.Input.ErrorCode)); got != c.Expected.HTTPStatus {
			t.Errorf("%s: HTTPStatus(%s) = %d, want %d", c.Description, c.Input.ErrorCode, got, c.Expected.HTTPStatus)
		}
	}
}

// TestLegacyErrorCodes checks that every code of sdk/error_codes.json is a
// constant and maps to a status other than the unknown-code 500 where the
// code names a client-side failure.
func TestLegacyErrorCodes(t *testing.T) {
	var doc struct {
		Errors []struct{ Code string }
	}
	if err := json.Unmarshal(testenv.ReadContract(t, "sdk/error_codes.json"), &doc); err != nil {
		t.Fatal(err)
	}
	known := map[string]int{
		string(contracts.CodeErrUnknown): 500, string(contracts.CodeErrCrypto): 400, string(contracts.CodeErrFrame): 400,
		string(contracts.CodeErrNetwork): 502, string(contracts.CodeErrValidation): 400, string(contracts.CodeErrNotFound): 404,
		string(contracts.CodeErrUnauthorized): 401,
	}
	if len(doc.Errors) != len(known) {
		t.Fatalf("%d codes in sdk/error_codes.json, want %d", len(doc.Errors), len(known))
	}
	for _, e := range doc.Errors {
		want, ok := known[e.Code]
		if !ok {
			t.Errorf("no constant for %s", e.Code)
			continue
		}
		if got := contracts.HTTPStatus(contracts.Code(e.Code)); got != want {
			t.Errorf("HTTPStatus(%s) = %d, want %d", e.Code, got, want)
		}
	}
}

// TestErrorIsAndCodeOf checks the sentinel matching rules and CodeOf.
func TestErrorIsAndCodeOf(t *testing.T) {
	cause := errors.New("disk on fire")
	err := fmt.Errorf("outer: %w", contracts.Wrap(contracts.CodeInvalidInput, "bad input", cause))
	if !errors.Is(err, contracts.ErrInvalidInput) || errors.Is(err, contracts.ErrDenied) {
		t.Fatal("sentinel matching by code is wrong")
	}
	if !errors.Is(err, cause) {
		t.Fatal("cause not reachable")
	}
	if contracts.CodeOf(err) != contracts.CodeInvalidInput || contracts.CodeOf(cause) != contracts.CodeInternal || contracts.CodeOf(nil) != "" {
		t.Fatal("CodeOf is wrong")
	}
	// A specific error is not matched by another specific error of the same code.
	if errors.Is(contracts.New(contracts.CodeDenied, "a"), contracts.New(contracts.CodeDenied, "b")) {
		t.Fatal("two messages of one code matched")
	}
	// The cause never reaches the JSON form.
	b, _ := json.Marshal(contracts.Wrap(contracts.CodeInternal, "store down", cause))
	if string(b) != `{"code":"INTERNAL","message":"store down","retryable":false}` {
		t.Fatalf("JSON %s", b)
	}
	if contracts.HTTPStatus("NO_SUCH_CODE") != http.StatusInternalServerError {
		t.Fatal("unknown codes must map to 500")
	}
}
