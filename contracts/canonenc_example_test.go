package contracts_test

import (
	"fmt"
	"log"

	"github.com/talosgo/talos/contracts"
)

// Member names known in advance are checked and quoted once.
var (
	nameActions = contracts.MustName("actions")
	nameTool    = contracts.MustName("tool")
)

// Write a scope item's canonical JSON directly: members in RFC 8785 order
// (the encoder refuses any other order), no JSON text in between.
func ExampleCanonicalEncoder() {
	var e contracts.CanonicalEncoder
	e.Strict = true // a signed object: no null, integers only
	b := e.BeginObject(nil)
	b = e.Name(b, nameActions)
	b = e.BeginArray(b)
	b = e.String(b, "read")
	b = e.String(b, "write")
	b = e.EndArray(b)
	b = e.Key(b, "read_only") // a key not known in advance
	b = e.Bool(b, true)
	b = e.Name(b, nameTool)
	b = e.String(b, "fs \"docs\"")
	b = e.EndObject(b)
	out, err := e.Finish(b)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(out))

	e.Reset()
	b = e.BeginObject(nil)
	b = e.Name(b, nameTool)
	b = e.String(b, "fs")
	b = e.Name(b, nameActions) // out of order
	_, err = e.Finish(b)
	fmt.Println(err)
	// Output:
	// {"actions":["read","write"],"read_only":true,"tool":"fs \"docs\""}
	// TALOS_INVALID_INPUT: canonical json: object keys out of canonical order or repeated
}
