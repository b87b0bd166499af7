module github.com/talosgo/talos/internal/chitest

go 1.26.0

require (
	github.com/go-chi/chi/v5 v5.5.0
	github.com/talosgo/talos v0.0.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/gowebpki/jcs v1.0.2 // indirect
	github.com/santhosh-tekuri/jsonschema/v5 v5.3.1 // indirect
	go.opentelemetry.io/otel v1.47.0 // indirect
	go.opentelemetry.io/otel/metric v1.47.0 // indirect
	go.opentelemetry.io/otel/trace v1.47.0 // indirect
	golang.org/x/mod v0.43.0 // indirect
)

replace github.com/talosgo/talos => ../..
