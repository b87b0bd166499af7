package contracts_test

import (
	"fmt"

	"github.com/talosgo/talos/contracts"
)

// A server decodes a request body with every rule at once: strict
// literals, exact field names, and no two names equal under case folding.
func ExampleUnmarshalStrictFold() {
	var req struct {
		Tool   string `json:"tool"`
		Action string `json:"action"`
	}
	fmt.Println(contracts.UnmarshalStrictFold([]byte(`{"action":"read","tool":"files"}`), &req), req.Tool)
	fmt.Println(contracts.UnmarshalStrictFold([]byte(`{"action":"read","Tool":"files"}`), &req))
	fmt.Println(contracts.UnmarshalStrictFold([]byte(`{"action":"read","tool":"a","TOOL":"b"}`), &req))
	// Output:
	// <nil> files
	// TALOS_INVALID_INPUT: canonical json: unknown or mis-cased field "Tool"
	// TALOS_INVALID_INPUT: canonical json: object has two member names equal under case folding, one is "TOOL"
}

// AppendCanonical writes the canonical form of a document after a prefix,
// without an intermediate copy when the document is already canonical.
func ExampleAppendCanonical() {
	b, err := contracts.AppendCanonical([]byte("body: "), []byte(`{ "b": 1, "a": "x" }`))
	fmt.Println(string(b), err)
	// Output:
	// body: {"a":"x","b":1} <nil>
}
