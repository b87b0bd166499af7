// Package contracts holds the wire-level building blocks every other Talos
// package shares: the error type and codes of the Talos Protocol contracts
// v1.x, canonical JSON, strict base64url, UUIDv7 identifiers, event cursors
// and ordering, the frame codec, the embedded JSON Schemas with their
// validator, and the library's own golden test vectors.
//
// # Model
//
//   - Errors: every error this library returns for outside input is an
//     [*Error] carrying a contract code ([CodeFrameInvalid],
//     [CodeInvalidInput], ...). errors.Is matches the sentinels
//     ([ErrFrameInvalid], ...) by code; [CodeOf] and [HTTPStatus] map errors
//     to codes and codes to HTTP statuses.
//   - Canonical JSON: [Canonicalize] is RFC 8785 (JCS) plus the Talos input
//     rules; [CanonicalizeStrict] and [MarshalStrict] are for signed and
//     hashed objects. Signatures and hashes are always computed over these
//     bytes. Hot objects whose members are known (tokens, audit events,
//     attestation bodies) write the same bytes directly with the typed
//     [CanonicalEncoder], which checks member order (UTF-16 code units),
//     UTF-8, safe integers, depth and size as it writes, so it cannot
//     produce non-canonical output; a fuzz test holds it to jcs.Transform.
//   - Bytes in JSON: [EncodeBase64URL] and the strict [DecodeBase64URL]; the
//     lenient [DecodeBase64Lenient] exists only for named legacy fields.
//   - Identifiers: [NewUUIDv7] (monotonic within a process), [IsUUIDv7]
//     (the lowercase form every schema demands), [UUIDv7Generator] with an
//     injectable clock.
//   - Streams: a [Cursor] is base64url("{unix seconds}:{uuidv7}");
//     [EncodeCursor], [DecodeCursor], [CompareCursors] (oldest first) and
//     [CompareNewestFirst] (the contracts' feed order).
//   - Frames: [EncodeFrame] and [DecodeFrame] read and write the canonical
//     JSON frame of schemas/frame.json; frames are not length-prefixed, so
//     DecodeFrame returns the bytes after the frame.
//   - Schemas: [Validate] checks a document against an embedded JSON Schema
//     and reports the JSON pointer of each violation.
//   - Golden vectors: [GoldenVectors], [Golden] and [GoldenFS] serve the
//     vectors in contracts/testdata (edge cases the contracts leave open and
//     derived pins such as the capability signature and the wallet address for
//     seed 00…01), so that every package tests against the same data. Each
//     [Vector] names its source and its expected outcome ("ok" or an error
//     code; compare with [Outcome]).
//
// # Security properties
//
// Parsers of outside bytes accept exactly one encoding of each value where
// the format allows it: base64url rejects padding, foreign characters and
// non-zero trailing bits; cursors reject leading zeros, signs and uppercase
// identifiers, so every accepted cursor re-encodes to itself; canonical JSON
// rejects duplicate keys (also when spelled with escapes), lone surrogates,
// invalid UTF-8 and integers beyond ±(2^53−1); frames reject unknown,
// duplicate and case-variant members, null, other versions and types.
// Every parser bounds its input (limits.go, limits_json.go) before decoding,
// never panics, and returns an *Error with the code the contracts prescribe;
// on error it returns no partial result. Error messages never quote secret
// material; they may quote short member names.
//
// UUIDv7 identifiers take their 74 random bits from crypto/rand; within one
// millisecond the generator adds a random step of up to 2^32 instead of 1, so
// that the next identifier is not predictable from the previous one. They
// are identifiers, not secrets or capabilities: they reveal their creation
// time to the millisecond.
//
// # Concurrency
//
// All functions are safe for concurrent use. A [UUIDv7Generator] is safe for
// concurrent use; [NewUUIDv7] uses one process-wide generator. Values
// returned ([Frame], [Cursor], []Vector, byte slices) are owned by the
// caller.
//
// # Compatibility
//
// The formats follow the Talos contracts v1.x vectors, which win where the
// contracts' prose disagrees (see ARCHITECTURE.md, "Wire formats: decided",
// and DESIGN-NOTES.md, contracts): cursor timestamps are Unix seconds (not
// milliseconds, as specs/semantics.md says), base64url is strict (not
// "padded or unpadded", as BYTES_ENCODING.md says), canonical JSON sorts keys
// by UTF-16 code units as RFC 8785 requires, and the known-bad hash of
// sdk/canonical_json.json is not reproduced. Frame flags are read as an
// unsigned 32-bit field since the contracts define no bits. The golden
// vectors are append-only: a pinned output never changes within a major
// version.
package contracts
