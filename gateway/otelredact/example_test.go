package otelredact_test

import (
	"fmt"

	"github.com/talosgo/talos/gateway/otelredact"
)

func ExampleRedactor_String() {
	r := otelredact.New(otelredact.Config{})
	r.AddSecret("talos_admin_hunter2")
	fmt.Println(r.String("Authorization: Bearer eyJhbGciOiJFZERTQSJ9.x.y"))
	fmt.Println(r.String(`{"tool":"search","signature":"c2lnbmF0dXJl"}`))
	fmt.Println(r.String("login with talos_admin_hunter2 failed"))
	fmt.Println(r.String("PUT /v1/config/{kind}/{name}"))
	// Output:
	// Authorization: [REDACTED]
	// {"tool":"search","signature":"[REDACTED]"}
	// login with [REDACTED] failed
	// PUT /v1/config/{kind}/{name}
}
