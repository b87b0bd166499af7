// Package chitest tests the talos middleware behind a third-party router,
// github.com/go-chi/chi. It is its own module so that chi never enters the
// library's module graph: the root go.mod names nothing only tests need.
//
// Run it with: cd internal/chitest && go test ./...
package chitest
