package contracts

// Size limits of the parsers in this package for outside input. They are
// upper bounds on work, not protocol constants: inputs beyond them are
// rejected with a typed error before any decoding.
const (
	// MaxFrameSize bounds the bytes [DecodeFrame] reads for one frame: one
	// JSON document of at most MaxJSONSize bytes.
	MaxFrameSize = MaxJSONSize

	// MaxFramePayload bounds the payload of one frame, in bytes: 766 KiB,
	// so that the payload and a signature of MaxFrameSignature bytes, in
	// base64url, and the other members fit in MaxFrameSize.
	MaxFramePayload = 768<<10 - 2<<10

	// MaxFrameFlags is the largest flags value a frame may carry. The
	// contracts define no flag bits; the field is kept as an unsigned 32-bit
	// bit field.
	MaxFrameFlags = 1<<32 - 1

	// MaxFrameSignature bounds a frame's signature, in bytes (an Ed25519
	// signature is 64; room is left for other schemes).
	MaxFrameSignature = 1 << 10

	// MaxCursorLength bounds a cursor's wire form, in characters. A valid
	// cursor is at most 76 (19 digits, ':', 36, in base64url).
	MaxCursorLength = 128

	// MaxCursorEventSize bounds the event [CheckCursorInvariantJSON] reads.
	MaxCursorEventSize = 256 << 10

	// MaxJSONSize bounds one JSON document passed to Canonicalize, CheckJSON
	// or UnmarshalStrict: 1 MiB.
	MaxJSONSize = 1 << 20
	// MaxJSONDepth bounds the nesting of arrays and objects.
	MaxJSONDepth = 64

	// maxViolations bounds the violations one ValidationError reports
	// (Validate's documents are bounded by MaxJSONSize and MaxJSONDepth).
	maxViolations = 32
	// maxViolationMessage bounds one violation message, in bytes.
	maxViolationMessage = 256
)
