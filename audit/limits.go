package audit

// Limits on outside input. Everything the package parses is bounded here.
const (
	// MaxChainObjectSize bounds one hash-chained object (A2A event, TGA
	// artifact or execution log entry) in bytes.
	MaxChainObjectSize = 256 << 10
)

// MaxExecutionEntries bounds one TGA trace's execution log.
const MaxExecutionEntries = 1 << 16

const (
	// MaxEventSize bounds one sealed audit event in bytes. It also keeps
	// every leaf within the 16-bit length of a C2SP entry bundle.
	MaxEventSize = 60 << 10
	// MaxMetaKeys is the contract's bound on meta members.
	MaxMetaKeys = 32
	// MaxMetaString is the contract's bound on a meta string, in characters.
	MaxMetaString = 1024
)
