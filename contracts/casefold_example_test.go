package contracts_test

import (
	"fmt"

	"github.com/talosgo/talos/contracts"
)

// A gateway decodes the fields it decides on with UnmarshalFields: a body
// that a case-sensitive upstream would read differently is refused.
func ExampleUnmarshalFields() {
	var req struct {
		Model string `json:"model"`
	}
	err := contracts.UnmarshalFields([]byte(`{"model":"gpt-expensive","MODEL":"gpt-cheap"}`), &req)
	fmt.Println(contracts.CodeOf(err))
	err = contracts.UnmarshalFields([]byte(`{"model":"gpt-cheap","temperature":0.2}`), &req)
	fmt.Println(err, req.Model)
	// Output:
	// TALOS_INVALID_INPUT
	// <nil> gpt-cheap
}
