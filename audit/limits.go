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

const (
	// MaxCheckpointSize bounds a signed checkpoint note in bytes.
	MaxCheckpointSize = 16 << 10
	// MaxCheckpointExtensions bounds a checkpoint's extension lines.
	MaxCheckpointExtensions = 16
	// MaxProofHashes bounds an inclusion or consistency proof (a tree of
	// 2^63 leaves needs at most 126).
	MaxProofHashes = 128
)

// MaxQueryLimit bounds one query page.
const MaxQueryLimit = 1000

const (
	// MaxWitnessRequest bounds a tlog-witness add-checkpoint request body.
	MaxWitnessRequest = MaxCheckpointSize + (MaxProofHashes+2)*64
	// MaxWitnessResponse bounds a witness's answer.
	MaxWitnessResponse = 8 << 10
	// MaxWitnessSplits bounds the split views a Witness keeps as evidence.
	MaxWitnessSplits = 64
)

const (
	// MaxBundleEvents bounds the events of one evidence bundle.
	MaxBundleEvents = 10000
	// MaxBundleSize bounds an evidence bundle in bytes.
	MaxBundleSize = 64 << 20
)
