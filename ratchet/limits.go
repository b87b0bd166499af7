package ratchet

// Limits on what the package accepts from outside and keeps in memory. They
// are the single place to look when reviewing resource bounds.
const (
	// MaxSkip is the largest number of message keys one header may make the
	// receiver derive and store on one chain (contract MAX_SKIP).
	MaxSkip = 1000

	// DefaultMaxSkippedKeys bounds the total skipped-key store of a session
	// when Config.MaxSkippedKeys is zero. The oldest keys are evicted first.
	DefaultMaxSkippedKeys = 2000

	// MaxForwardJump bounds the message keys one message may make the
	// receiver derive in total: the rest of the previous receiving chain
	// (up to the header's pn) plus the new chain (up to its n). Each part
	// is also bounded by MaxSkip, so on one chain the contract's boundary
	// is unchanged; a DH step can no longer cost 2 × MaxSkip derivations.
	// (libsignal's MAX_FORWARD_JUMPS bounds one chain; a ratchet step here
	// spans two.)
	MaxForwardJump = MaxSkip

	// MaxReceivingChains bounds the receiving chains whose skipped keys a
	// session keeps (libsignal: 5). When keys of a sixth chain arrive, all
	// keys of the oldest chain are dropped: its late messages no longer
	// open, and the skipped store can never be spread over many chains.
	MaxReceivingChains = 5

	// MaxArchivedSessions bounds the earlier sessions a Record keeps beside
	// its current one (libsignal: 40). Archiving one more drops the oldest.
	MaxArchivedSessions = 40

	// pqMarkerBits is how many leading zero bits of the marker hash commit
	// a signed prekey to the hybrid setup (see PrekeyBundle.HybridCommitted):
	// GenerateHybridPrekey draws 2^12 candidates on average, and a prekey
	// made without the extension carries the mark with probability 2^-12.
	pqMarkerBits = 12

	// maxPQMarkerTries bounds the candidates GenerateHybridPrekey draws
	// (failing with probability below 2^-180 for a good source).
	maxPQMarkerTries = 1 << 19

	// maxCounter is the largest n or pn accepted in a header (uint32).
	maxCounter = 1<<32 - 1

	// MaxPlaintextSize bounds one message's plaintext.
	MaxPlaintextSize = 1 << 20

	// maxWireSize bounds one wire envelope: the base64url of the largest
	// ciphertext plus the fixed JSON around it.
	maxWireSize = (MaxPlaintextSize+tagSize)*4/3 + 256

	// maxStateSize bounds a serialized session state.
	maxStateSize = 1 << 20

	// maxBundleSize bounds a JSON prekey bundle or setup proof.
	maxBundleSize = 4 << 10

	// MaxFrameSize bounds one JSON A2A encrypted frame.
	MaxFrameSize = maxWireSize + 2<<10

	// MaxSeqAhead is how far beyond the highest sender_seq seen a frame may
	// be before the receiver rejects it (DESIGN 5).
	MaxSeqAhead = 1024

	// maxSeqWindow is how many delivered sender_seq values (and their frame
	// digests) a SeqTracker remembers behind the highest one.
	maxSeqWindow = 4096

	// dedupWindow is how many delivered messages a SessionChannel remembers
	// to recognize duplicates.
	dedupWindow = 1024

	// maxEarlyEvents bounds the membership events a Group keeps while it
	// waits for their predecessors.
	maxEarlyEvents = 64

	// MaxGroupMembers bounds a Group's membership.
	MaxGroupMembers = 1024

	// maxIDLen bounds principal, session and group identifiers (contract: 255).
	maxIDLen = 255
)
