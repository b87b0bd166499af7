package audit

// Limits on outside input. Everything the package parses is bounded here.
const (
	// MaxChainObjectSize bounds one hash-chained object (A2A event, TGA
	// artifact or execution log entry) in bytes.
	MaxChainObjectSize = 256 << 10
)

// MaxExecutionEntries bounds one TGA trace's execution log.
const MaxExecutionEntries = 1 << 16
