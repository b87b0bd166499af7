package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
	"github.com/talosgo/talos/contracts"
)

// richEvent has every optional member and meta values that need escapes,
// non-ASCII and every scalar type.
func richEvent(i int) audit.Event {
	e := audittest.Event(i)
	e.Principal = audit.SignedPrincipal("agent \"7\"\n", "team/é", "did:key:z6Mk")
	e.HTTP.ClientIPHash = strings.Repeat("ab", 32)
	e.HTTP.ClientIPHashAlg = audit.IPHashAlg
	e.HTTP.ClientIPHashKeyID = "k1"
	e.Resource = &audit.Resource{ResourceType: "tool", ResourceID: "fs\t\x01"}
	e.Meta = map[string]any{"n": i, "f": 2.5, "neg": -7, "s": "😀 \\ \u2028", "t": true, "z": nil,
		"\U00010000": "astral", "\ue000": "private use", "num": json.Number("1.5e3")}
	return e
}

// TestAppendEntryMatchesAppend: a sealed event appended with AppendEntry
// (fast path for the canonical form, ParseEvent for others) gets the same
// leaf and event hash as Append of the event itself.
func TestAppendEntryMatchesAppend(t *testing.T) {
	ctx := context.Background()
	for _, e := range []audit.Event{audittest.Event(1), audittest.Event(2), richEvent(3)} {
		sealed, err := e.Seal()
		if err != nil {
			t.Fatal(err)
		}
		want, err := audittest.NewLog(t, audit.NewMemStore()).Append(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		var indented bytes.Buffer
		if err := json.Indent(&indented, sealed, "", "  "); err != nil {
			t.Fatal(err)
		}
		for name, in := range map[string][]byte{
			"canonical": sealed,
			"indented":  indented.Bytes(),
			"escaped /": bytes.Replace(sealed, []byte(`"/v1/`), []byte(`"\/v1/`), 1),
		} {
			got, err := audittest.NewLog(t, audit.NewMemStore()).AppendEntry(ctx, in)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got.LeafHash != want.LeafHash || got.EventHash != want.EventHash {
				t.Fatalf("%s: receipt %+v, Append gave %+v", name, got, want)
			}
		}
	}
}

// TestAppendEntryRejects: what ParseEvent rejects, AppendEntry rejects with
// the same code, whether or not the input looks canonical.
func TestAppendEntryRejects(t *testing.T) {
	ctx := context.Background()
	l := audittest.NewLog(t, audit.NewMemStore())
	e := richEvent(4)
	sealed, _ := e.Seal()
	s := string(sealed)
	cases := map[string]string{
		"hash mismatch":        strings.Replace(s, `"event_hash":"`+e.EventHash[:1], `"event_hash":"`+string(rune(e.EventHash[0]^1)), 1),
		"changed meta":         strings.Replace(s, `"t":true`, `"t":false`, 1),
		"duplicate meta key":   strings.Replace(s, `"t":true`, `"t":true,"z":null`, 1),
		"duplicate member":     strings.Replace(s, `"outcome":"success"`, `"outcome":"success","outcome":"denied"`, 1),
		"unknown member":       strings.Replace(s, `"outcome":`, `"outcomes":"x","outcome":`, 1),
		"lone surrogate":       strings.Replace(s, `"tool"`, `"\ud800"`, 1),
		"unsafe integer":       strings.Replace(s, `"neg":-7`, `"neg":9007199254740993`, 1),
		"empty team":           strings.Replace(s, `"team_id":"team/é"`, `"team_id":""`, 1),
		"null outcome":         strings.Replace(s, `"outcome":"success"`, `"outcome":null`, 1),
		"trailing data":        s + " {}",
		"truncated":            s[:len(s)-1],
		"bad status":           strings.Replace(s, `"status_code":200`, `"status_code":2000`, 1),
		"invalid UTF-8":        strings.Replace(s, "é", "\xff", 1),
		"control in string":    strings.Replace(s, `"k1"`, "\"k\x011\"", 1),
		"non-canonical escape": strings.Replace(s, `\t`, `\u0009`, 1),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if in == s {
				t.Fatal("case did not change the input")
			}
			_, perr := audit.ParseEvent([]byte(in))
			_, err := l.AppendEntry(ctx, []byte(in))
			if (err == nil) != (perr == nil) || contracts.CodeOf(err) != contracts.CodeOf(perr) {
				t.Fatalf("AppendEntry: %v; ParseEvent: %v", err, perr)
			}
			if name != "non-canonical escape" && err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if n, _ := l.Size(ctx); n != 1 { // only the non-canonical escape is a valid event
		t.Fatalf("log size %d, want 1", n)
	}
}

// TestAppendEntryRedacts: the fast path still applies the Redactor.
func TestAppendEntryRedacts(t *testing.T) {
	ctx := context.Background()
	red, err := audit.NewRedactor(audit.RedactionConfig{Rules: []audit.RedactionRule{{Field: "meta.s", Action: audit.Drop}}})
	if err != nil {
		t.Fatal(err)
	}
	e := richEvent(5)
	sealed, _ := e.Seal()
	signer, verifier := audittest.SignerVerifier(t)
	withRed, err := audit.New(ctx, audit.Config{Store: audit.NewMemStore(), Signer: signer, Verifier: verifier, Redactor: red})
	if err != nil {
		t.Fatal(err)
	}
	got, err := withRed.AppendEntry(ctx, sealed)
	if err != nil {
		t.Fatal(err)
	}
	want, err := withRed.Append(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if got.LeafHash != want.LeafHash || got.EventHash == e.EventHash {
		t.Fatalf("redacted AppendEntry %+v, Append %+v, original hash %s", got, want, e.EventHash)
	}
}

// FuzzAppendEntry: AppendEntry accepts exactly what ParseEvent accepts, and
// stores the canonical seal of the parsed event.
func FuzzAppendEntry(f *testing.F) {
	for _, e := range []audit.Event{audittest.Event(0), audittest.Event(1), richEvent(2)} {
		b, _ := e.Seal()
		f.Add(b)
	}
	ctx := context.Background()
	l := audittest.NewLog(f, audit.NewMemStore())
	f.Fuzz(func(t *testing.T, b []byte) {
		e, perr := audit.ParseEvent(b)
		r, err := l.AppendEntry(ctx, b)
		if (err == nil) != (perr == nil) || contracts.CodeOf(err) != contracts.CodeOf(perr) {
			t.Fatalf("AppendEntry: %v; ParseEvent: %v; input %q", err, perr, b)
		}
		if err != nil {
			return
		}
		leaf, err := e.Seal()
		if err != nil {
			t.Fatal(err)
		}
		if r.LeafHash != audit.Hash(sha256.Sum256(append([]byte{0}, leaf...))) || r.EventHash != e.EventHash {
			t.Fatalf("stored leaf is not the seal of the parsed event %q", b)
		}
	})
}

// BenchmarkAppendEntry compares AppendEntry of a sealed event with Append of
// the event (the target: ≤ 1.2×) in one run, and interleaves the two
// in one loop for the x-append ratio metric.
func BenchmarkAppendEntry(b *testing.B) {
	ctx := context.Background()
	e := audittest.Event(1)
	sealed, err := e.Seal()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("sealed event: %d bytes", len(sealed))
	b.Run("append", func(b *testing.B) {
		l := audittest.NewLog(b, audit.NewMemStore())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.Append(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append_entry", func(b *testing.B) {
		l := audittest.NewLog(b, audit.NewMemStore())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.AppendEntry(ctx, sealed); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse_event_then_append", func(b *testing.B) { // the old AppendEntry
		l := audittest.NewLog(b, audit.NewMemStore())
		b.ReportAllocs()
		for b.Loop() {
			p, err := audit.ParseEvent(sealed)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := l.Append(ctx, *p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ratio", func(b *testing.B) {
		la := audittest.NewLog(b, audit.NewMemStore())
		le := audittest.NewLog(b, audit.NewMemStore())
		var ta, te time.Duration
		b.ReportAllocs()
		for b.Loop() {
			t0 := time.Now()
			if _, err := la.Append(ctx, e); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if _, err := le.AppendEntry(ctx, sealed); err != nil {
				b.Fatal(err)
			}
			te += time.Since(t1)
			ta += t1.Sub(t0)
		}
		b.ReportMetric(float64(te)/float64(ta), "x-append")
	})
}
