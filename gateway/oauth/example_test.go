package oauth_test

import (
	"fmt"
	"net/http"

	"github.com/talosgo/talos/gateway/oauth"
)

// A resource server for https://gateway.example.com/mcp accepting tokens
// of one issuer: the metadata at both well-known paths, and the MCP
// endpoint behind the middleware, which requires the scope tools:read.
func ExampleVerifier() {
	v, err := oauth.NewVerifier(oauth.Config{
		Issuer:          "https://auth.example.com",
		Resource:        "https://gateway.example.com/mcp",
		ScopesSupported: []string{"tools:read", "tools:write"},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	for _, p := range v.MetadataPaths() {
		mux.Handle("GET "+p, v.MetadataHandler())
	}
	mcp := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := oauth.ClaimsFrom(r.Context())
		fmt.Fprintln(w, "hello", c.Subject)
	})
	mux.Handle("POST /mcp", v.Middleware([]string{"tools:read"}, mcp))

	fmt.Println(v.MetadataPaths())
	fmt.Println(v.Challenge(oauth.ErrInvalidToken, nil))
	// Output:
	// [/.well-known/oauth-protected-resource /.well-known/oauth-protected-resource/mcp]
	// Bearer resource_metadata="https://gateway.example.com/.well-known/oauth-protected-resource/mcp", error="invalid_token"
}
