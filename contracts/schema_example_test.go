package contracts_test

import (
	"errors"
	"fmt"

	"github.com/talosgo/talos/contracts"
)

func ExampleValidate() {
	body := []byte(`{"schema_id":"talos.a2a.group_member_add_request","schema_version":"v1","member_id":""}`)
	err := contracts.Validate("a2a/group_member_add_request", body)
	fmt.Println(contracts.CodeOf(err))
	var ve *contracts.ValidationError
	if errors.As(err, &ve) {
		for _, v := range ve.Violations {
			fmt.Printf("%s %s: %s\n", v.Pointer, v.Keyword, v.Message)
		}
	}
	// Output:
	// SCHEMA_VALIDATION_ERROR
	// /member_id minLength: length must be >= 1, but got 0
}

func ExampleSchemaNames() {
	for _, name := range contracts.SchemaNames()[:3] {
		fmt.Println(name)
	}
	// Output:
	// a2a/encrypted_frame
	// a2a/frame_send_request
	// a2a/group
}
