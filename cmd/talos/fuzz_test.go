package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/talosgo/talos/contracts"
)

// FuzzParseBundle: an accepted entry bundle re-encodes to itself, and
// every rejection is a *contracts.Error.
func FuzzParseBundle(f *testing.F) {
	f.Add([]byte{0, 1, 'a', 0, 0}, 2)
	f.Add([]byte{0, 3, '{', '}', '\n'}, 1)
	f.Add([]byte{0xff, 0xff}, 1)
	f.Fuzz(func(t *testing.T, b []byte, want int) {
		if want < 0 || want > tileWidth {
			return
		}
		es, err := parseBundle(b, want)
		if err != nil {
			if _, ok := err.(*contracts.Error); !ok {
				t.Fatalf("untyped error %T", err)
			}
			return
		}
		var again []byte
		for _, e := range es {
			again = append(again, byte(len(e)>>8), byte(len(e)))
			again = append(again, e...)
		}
		if len(es) != want || !bytes.Equal(again, b) {
			t.Fatalf("accepted %x as %d entries, re-encoded %x", b, len(es), again)
		}
	})
}

// FuzzParseProofDoc: an accepted proof has its index inside the tree, at
// most 64 hashes, each in its one base64 form, and rejections are typed.
func FuzzParseProofDoc(f *testing.F) {
	good, _ := json.Marshal(proofDoc{Index: 3, TreeSize: 8, LeafHash: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
		Proof: []string{"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}, EntryB64u: "e30"})
	f.Add(good)
	f.Add([]byte(`{"tree_size":1,"proof":[]}`))
	f.Add([]byte(`{"tree_size":1,"proof":[],"Index":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, p, err := parseProofDoc(b)
		if err != nil {
			if _, ok := err.(*contracts.Error); !ok {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		if d.Index >= d.TreeSize || len(p) != len(d.Proof) || len(p) > 64 {
			t.Fatalf("accepted %+v", d)
		}
		for i, h := range p {
			if h.String() != d.Proof[i] {
				t.Fatalf("hash %d has two encodings", i)
			}
		}
	})
}

// FuzzStateFile: the state file reader accepts only its own version and
// never panics.
func FuzzStateFile(f *testing.F) {
	f.Add([]byte(`{"logs":{"a":"b"},"version":"talos.audit-state.v1"}` + "\n"))
	f.Add([]byte(`{"logs":{},"version":"talos.witness-state.v1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		p := dir + "/state.json"
		if err := writeFileAtomic(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := loadState(p, stateVersion)
		if err == nil && (st.Version != stateVersion || st.Logs == nil) {
			t.Fatalf("accepted %q", b)
		}
	})
}
