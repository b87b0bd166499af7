package config_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/talosgo/talos/gateway/config"
)

// Example serves budget documents behind a bearer check and logs every new
// version through OnChange.
func Example() {
	svc, err := config.New(config.Config{
		Store: config.NewMemStore(),
		OnChange: func(_ context.Context, c config.Change) error {
			fmt.Printf("change: %s/%s v%d\n", c.Kind, c.Name, c.Version)
			return nil // an error here would refuse the change
		},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	svc.Register(mux, func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer operator-secret" {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	})
	put := func(doc string) int {
		r := httptest.NewRequest("PUT", "/v1/config/budget/team-a", strings.NewReader(doc))
		r.Header.Set("Authorization", "Bearer operator-secret")
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w.Code
	}
	fmt.Println(put(`{"id":"team-a","scope_type":"team","scope_id":"a","max_usd":10}`))
	fmt.Println(put(`{"scope_id":"a","id":"team-a","max_usd":10,"scope_type":"team"}`)) // the same document
	fmt.Println(put(`{"id":"team-a","scope_type":"org","scope_id":"a"}`))               // refused by the schema
	// Output:
	// change: budget/team-a v1
	// 201
	// 200
	// 400
}
