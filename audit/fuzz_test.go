package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"testing"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
	"github.com/talosgo/talos/contracts"
	"golang.org/x/mod/sumdb/tlog"
)

// FuzzParseEvent: an accepted event re-encodes to the canonical form of the
// input, and its hash recomputes.
func FuzzParseEvent(f *testing.F) {
	for i := range 3 {
		e := audittest.Event(i)
		b, _ := e.Seal()
		f.Add(b)
	}
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := audit.ParseEvent(b)
		if err != nil {
			if contracts.CodeOf(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		canon, err := contracts.Canonicalize(b)
		if err != nil {
			t.Fatal(err)
		}
		again, err := e.MarshalCanonical()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, canon) {
			t.Fatalf("accepted event does not re-encode:\n in  %s\n out %s", canon, again)
		}
	})
}

// FuzzParseCheckpointBody: accepted ⇒ Body() re-encodes to the input.
func FuzzParseCheckpointBody(f *testing.F) {
	l := audittest.NewLog(f, audit.NewMemStore())
	cp, _ := l.Checkpoint(context.Background())
	f.Add(cp.Body())
	f.Add([]byte("example.com/log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\next\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := audit.ParseCheckpointBody(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Body(), b) {
			t.Fatalf("non-canonical checkpoint accepted: %q", b)
		}
	})
}

// FuzzOpenCheckpoint: any mutation of a signed checkpoint either fails or
// yields the same tree (only signature-block changes that keep the log's
// signature, such as an extra unknown signature line, are accepted).
func FuzzOpenCheckpoint(f *testing.F) {
	l := audittest.NewLog(f, audit.NewMemStore())
	for i := range 3 {
		l.Append(context.Background(), audittest.Event(i))
	}
	cp, _ := l.Checkpoint(context.Background())
	_, v := audittest.SignerVerifier(f)
	f.Add(cp.Note)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := audit.OpenCheckpoint(b, v)
		if err != nil {
			if contracts.CodeOf(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if got.Size != cp.Size || got.Hash != cp.Hash || got.Origin != cp.Origin {
			t.Fatalf("forged checkpoint accepted: %q", b)
		}
	})
}

// FuzzAddCheckpointRequest: accepted ⇒ re-encodes to the input; the
// witness never panics and only cosigns verified notes.
func FuzzAddCheckpointRequest(f *testing.F) {
	l := audittest.NewLog(f, audit.NewMemStore())
	for i := range 5 {
		l.Append(context.Background(), audittest.Event(i))
	}
	cp, _ := l.Checkpoint(context.Background())
	p, _ := l.ConsistencyProof(context.Background(), 2, 5)
	f.Add(audit.FormatAddCheckpoint(0, nil, cp.Note))
	f.Add(audit.FormatAddCheckpoint(2, p, cp.Note))
	f.Fuzz(func(t *testing.T, b []byte) {
		old, proof, msg, err := audit.ParseAddCheckpoint(b)
		if err != nil {
			return
		}
		if !bytes.Equal(audit.FormatAddCheckpoint(old, proof, msg), b) {
			t.Fatalf("non-canonical request accepted: %q", b)
		}
		w := newWitness(t)
		lines, err := w.AddCheckpoint(context.Background(), old, proof, msg)
		if err != nil {
			return
		}
		_, logV := audittest.SignerVerifier(t)
		if _, _, err := audit.VerifyCosigned(audit.AddCosignatures(msg, lines), logV, "witness.example/w1",
			witnessKey().Public().(ed25519.PublicKey)); err != nil {
			t.Fatalf("witness cosigned something unverifiable: %v", err)
		}
	})
}

// FuzzVerifyProofs: random proofs, indexes and sizes never verify against
// a real checkpoint unless they are the real proof, and never panic.
func FuzzVerifyProofs(f *testing.F) {
	l := audittest.NewLog(f, audit.NewMemStore())
	var leaves []audit.Hash
	for i := range 20 {
		r, _ := l.Append(context.Background(), audittest.Event(i))
		leaves = append(leaves, r.LeafHash)
	}
	cp, _ := l.Checkpoint(context.Background())
	real, _ := l.InclusionProof(context.Background(), 7, 20)
	var seed []byte
	for _, h := range real {
		seed = append(seed, h[:]...)
	}
	f.Add(seed, uint64(7), uint64(20))
	f.Fuzz(func(t *testing.T, raw []byte, index, size uint64) {
		var proof tlog.RecordProof
		for len(raw) >= 32 {
			proof = append(proof, tlog.Hash(raw[:32]))
			raw = raw[32:]
		}
		c := cp
		c.Size = size
		leaf := audit.Hash{}
		if index < uint64(len(leaves)) {
			leaf = leaves[index]
		}
		if audit.VerifyInclusion(proof, c, index, leaf) == nil {
			want, err := l.InclusionProof(context.Background(), index, size)
			if err != nil || size != cp.Size || len(want) != len(proof) {
				t.Fatalf("forged inclusion proof accepted (index %d size %d)", index, size)
			}
		}
		old := c
		old.Hash = leaf
		tp := tlog.TreeProof(proof)
		if audit.VerifyConsistency(tp, old, cp) == nil && size != 0 && size != cp.Size {
			t.Fatalf("forged consistency proof accepted (size %d)", size)
		}
	})
}

// FuzzChainDigest: digest computation never panics, and accepted inputs
// hash like their canonical form.
func FuzzChainDigest(f *testing.F) {
	f.Add([]byte(`{"a":1,"event_digest":"x"}`))
	f.Add([]byte(`{"b":[1,{"c":null}],"previous_digest":"00"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := audit.ChainDigest(b, "event_digest")
		if err != nil {
			return
		}
		canon, err := contracts.Canonicalize(b)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := audit.ChainDigest(json.RawMessage(canon), "event_digest")
		if err != nil || d2 != d {
			t.Fatalf("digest depends on the encoding: %v", err)
		}
	})
}

// FuzzVerifyCosigned: a mutated cosigned checkpoint either fails with a
// typed error or still names the original tree.
func FuzzVerifyCosigned(f *testing.F) {
	ctx := context.Background()
	l := audittest.NewLog(f, audit.NewMemStore())
	for i := range 4 {
		l.Append(ctx, audittest.Event(i))
	}
	w := newWitness(f)
	cp, err := l.AnchorCheckpoint(ctx, w, 0)
	if err != nil {
		f.Fatal(err)
	}
	_, logV := audittest.SignerVerifier(f)
	pub := witnessKey().Public().(ed25519.PublicKey)
	f.Add(cp.Note)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, _, err := audit.VerifyCosigned(b, logV, "witness.example/w1", pub)
		if err != nil {
			if contracts.CodeOf(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if got.Size != cp.Size || got.Hash != cp.Hash {
			t.Fatalf("forged cosigned checkpoint accepted: %q", b)
		}
	})
}
