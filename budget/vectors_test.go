package budget_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/testenv"
)

// The denials this package produces map to the HTTP statuses of the
// contract's ai_gateway/error_mapping.json vectors.
func TestErrorMappingVectors(t *testing.T) {
	var vectors []struct {
		Description string `json:"description"`
		Input       struct {
			ErrorCode string `json:"error_code"`
		} `json:"input"`
		Expected struct {
			HTTPStatus int `json:"http_status"`
		} `json:"expected"`
	}
	if err := json.Unmarshal(testenv.ReadContract(t, "test_vectors/ai_gateway/error_mapping.json"), &vectors); err != nil {
		t.Fatal(err)
	}
	ours := map[string]error{
		string(contracts.CodeBudgetExceeded): budget.Reservation{DeniedBy: "team:t1"}.Err(),
		string(contracts.CodeRateLimited):    budget.Result{RetryAfter: time.Second}.Err(),
	}
	seen := 0
	for _, v := range vectors {
		err, ok := ours[v.Input.ErrorCode]
		if !ok {
			continue
		}
		seen++
		code := contracts.CodeOf(err)
		if string(code) != v.Input.ErrorCode || contracts.HTTPStatus(code) != v.Expected.HTTPStatus {
			t.Errorf("%s: our error %v maps to %d, want %s → %d", v.Description, err, contracts.HTTPStatus(code), v.Input.ErrorCode, v.Expected.HTTPStatus)
		}
	}
	if seen != len(ours) {
		t.Fatalf("found vectors for %d of our %d codes", seen, len(ours))
	}
}
