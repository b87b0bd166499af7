// Command gen writes the server's OpenAPI document (openapi.Build) to
// openapi.json beside it; `go generate` in examples/server/openapi runs it.
package main

import (
	"log"
	"os"

	"github.com/talosgo/talos/examples/server/openapi"
)

func main() {
	b, err := openapi.Build()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("openapi.json", b, 0o644); err != nil {
		log.Fatal(err)
	}
}
