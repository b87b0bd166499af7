package contracts

import (
	"embed"
	"encoding/json"
	"io/fs"
	"strings"
)

// The library's own golden vectors: JSON files generated once, checked by
// hand against the contracts and the RFCs, and pinned in contracts/testdata.
// They cover what the contracts' vectors leave open (canonical JSON edge
// cases, base64url trailing bits, frames, cursors, UUIDv7 forms) and derived
// pins (the capability signature and wallet address of the contracts digest).
// Every package's tests read them through GoldenVectors, so one file serves
// every implementation of a format.
//
//go:embed testdata/*.json
var goldenFiles embed.FS

// A Vector is one golden test case.
//
// Expect is "ok" when the operation must succeed (Output then holds the
// expected result), and otherwise the contract error code it must fail with,
// e.g. "TALOS_INVALID_INPUT"; compare it with [Outcome]. Input and Output are
// the raw JSON of the file: each file's description says what they hold.
type Vector struct {
	Name    string          `json:"name"`
	Source  string          `json:"source"`
	Expect  string          `json:"expect"`
	Comment string          `json:"comment,omitempty"`
	Input   json.RawMessage `json:"input"`
	Output  json.RawMessage `json:"output,omitempty"`
}

// OutcomeOK is the Expect value of a vector whose operation succeeds.
const OutcomeOK = "ok"

// Outcome returns OutcomeOK for a nil error and the error's contract code
// otherwise (see [CodeOf]), for comparison with [Vector.Expect].
func Outcome(err error) string {
	if err == nil {
		return OutcomeOK
	}
	return string(CodeOf(err))
}

// GoldenFS returns the golden vector files as a read-only file system whose
// root holds "<name>.json" files. It is safe for concurrent use.
func GoldenFS() fs.FS {
	sub, err := fs.Sub(goldenFiles, "testdata")
	if err != nil {
		// fs.Sub fails only for an invalid literal path.
		panic("contracts: embedded testdata: " + err.Error())
	}
	return sub
}

// GoldenNames returns the names of the golden vector files, sorted, without
// the ".json" suffix.
func GoldenNames() []string {
	entries, _ := goldenFiles.ReadDir("testdata")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	return names
}

// Golden returns the raw JSON of the golden vector file name (for example
// "canonical_json", "identity", "capability"), or a NOT_FOUND error.
func Golden(name string) ([]byte, error) {
	if name == "" || strings.ContainsAny(name, "/\\.") {
		return nil, New(CodeNotFound, "contracts: no golden vector file "+name)
	}
	b, err := goldenFiles.ReadFile("testdata/" + name + ".json")
	if err != nil {
		return nil, Wrap(CodeNotFound, "contracts: no golden vector file "+name, err)
	}
	return b, nil
}

// GoldenVectors returns the vectors of the golden file name in file order.
// Each call returns fresh values the caller may modify.
func GoldenVectors(name string) ([]Vector, error) {
	b, err := Golden(name)
	if err != nil {
		return nil, err
	}
	var f struct {
		Vectors []Vector `json:"vectors"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, Wrap(CodeInternal, "contracts: golden vector file "+name+" is malformed", err)
	}
	return f.Vectors, nil
}
