package openapi_test

import (
	"encoding/json"
	"fmt"

	"github.com/talosgo/talos/examples/server/openapi"
)

// Build returns the document the server embeds; each operation names the
// mux pattern serving it, and admin operations the grant they need.
func ExampleBuild() {
	b, err := openapi.Build()
	if err != nil {
		panic(err)
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			Route string            `json:"x-talos-route"`
			Grant map[string]string `json:"x-talos-grant"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		panic(err)
	}
	op := doc.Paths["/v1/principals/{did}"]["put"]
	fmt.Println(doc.OpenAPI, op.Route, op.Grant["tool"], op.Grant["action"])
	// Output: 3.1.0 PUT /v1/principals/{did} admin.principals write
}
