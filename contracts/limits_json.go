package contracts

// Limits on JSON input accepted by the canonicalizer and strict decoder.
const (
	// MaxJSONSize bounds one JSON document passed to Canonicalize, CheckJSON
	// or UnmarshalStrict: 1 MiB.
	MaxJSONSize = 1 << 20
	// MaxJSONDepth bounds the nesting of arrays and objects.
	MaxJSONDepth = 64
)
