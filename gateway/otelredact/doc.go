// Package otelredact removes secrets from OpenTelemetry spans before they
// leave the process.
//
// # Model
//
// A [Redactor] masks values in span names, attribute values (of sensitive
// keys: whole; of other keys: by a value scan), event names and attributes,
// link attributes and status descriptions. An [Exporter] wraps any
// sdktrace.SpanExporter so that the wrapped exporter only ever sees redacted
// copies: the redaction happens in-process, before spans are serialized.
//
// # Security properties
//
// Masked whole, by key (case-insensitive substring): Authorization, cookies,
// every X-Talos-* header (HTTP attestation), tokens and capabilities,
// signatures, nonces, ciphertexts and A2A frame payloads, secrets, passwords,
// credentials, seeds, private keys, KEKs, envelopes and DSNs. Masked by value
// scan, under any key and in names: registered secret values
// ([Redactor.AddSecret]), "Bearer <credential>", header dumps
// ("Authorization: ..."), sensitive JSON fields and key=value pairs, URL
// passwords, and base64 runs of 32 or more characters mixing character
// classes (raw keys, signatures, ciphertexts). Hex digests and did:key
// identifiers are kept, since they are public and needed to correlate traces
// with the audit log. Byte-slice attributes are always masked.
//
// The scan is a heuristic backstop; instrumentation should still avoid
// recording secrets at all.
//
// # Concurrency
//
// Redactor and Exporter are safe for concurrent use.
//
// # Compatibility
//
// Part of the gateway module (github.com/talosgo/talos/gateway), which
// follows the library's versioning; examples/server uses it.
package otelredact
