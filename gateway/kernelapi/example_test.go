package kernelapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"

	"github.com/talosgo/talos/budget"
)

// Example serves GET /v1/identity of a small gateway (see newGateway in
// the tests: admin API, Kernel and kernel API over the memory back-ends)
// and prints the opcode a client signs for POST /v1/authorize.
func Example() {
	dir, _ := os.MkdirTemp("", "kernelapi")
	defer os.RemoveAll(dir)
	g, err := newGateway(context.Background(), dir, budget.PerSecond(100))
	if err != nil {
		fmt.Println(err)
		return
	}
	w := httptest.NewRecorder()
	g.mux.ServeHTTP(w, httptest.NewRequest("GET", "/v1/identity", nil))
	var id struct {
		Routes map[string]string `json:"attested_routes"`
	}
	json.Unmarshal(w.Body.Bytes(), &id)
	fmt.Println(w.Code, id.Routes["POST /v1/authorize"])
	// Output: 200 kernel.authorize
}
