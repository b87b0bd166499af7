package talos_test

import (
	"crypto/sha256"
	"testing"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/testenv"
)

// TestContractHashes recomputes CONTRACT_HASH and schedule_hash from the
// reference contracts (sdk/HASHING.md) and compares them with the pinned
// constants, so a contracts update that changes them is noticed.
func TestContractHashes(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"sdk/contract_manifest.json", talos.ContractManifestHash},
		{"sdk/ratchet_kdf_schedule.json", talos.RatchetScheduleHash},
	} {
		canon, err := contracts.Canonicalize(testenv.ReadContract(t, tc.file))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		sum := sha256.Sum256(canon)
		if got := contracts.EncodeBase64URL(sum[:]); got != tc.want {
			t.Errorf("%s: hash %s, want %s", tc.file, got, tc.want)
		}
	}
}
