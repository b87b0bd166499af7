package audit_test

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/testenv"
)

type eventVector struct {
	Name             string          `json:"name"`
	EventWithoutHash json.RawMessage `json:"event_without_hash"`
	InputContext     struct {
		ClientIP       *string        `json:"client_ip"`
		IPHMACKey      string         `json:"ip_hmac_key"`
		IPHMACKeyID    string         `json:"ip_hmac_key_id"`
		UnfilteredMeta map[string]any `json:"unfiltered_meta"`
	} `json:"input_context"`
	CanonicalBytesHex string `json:"canonical_bytes_hex"`
	EventHash         string `json:"event_hash"`
}

func loadEventVectors(t *testing.T) []eventVector {
	var f struct {
		Tests []eventVector `json:"tests"`
	}
	if err := json.Unmarshal(testenv.ReadContract(t, "test_vectors/audit_event_vectors.json"), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Tests) != 5 {
		t.Fatalf("%d vectors, want 5", len(f.Tests))
	}
	return f.Tests
}

// knownBadMarkers names the vector whose redaction contradicts the normative
// one: it drops secret_key without adding the markers (digest §7.1 [X]).
const knownBadMarkers = "failure_meta_filtered"

func TestEventVectors(t *testing.T) {
	for _, v := range loadEventVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			var e audit.Event
			dec := json.NewDecoder(strings.NewReader(string(v.EventWithoutHash)))
			dec.UseNumber()
			if err := dec.Decode(&e); err != nil {
				t.Fatal(err)
			}
			if err := e.Validate(); err != nil {
				t.Fatalf("vector event invalid: %v", err)
			}
			canon, err := e.CanonicalBytes()
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(canon); got != v.CanonicalBytesHex {
				t.Fatalf("canonical bytes\n got %s\nwant %s", canon, mustHex(t, v.CanonicalBytesHex))
			}
			h, err := e.ComputeHash()
			if err != nil || h != v.EventHash {
				t.Fatalf("hash %s %v, want %s", h, err, v.EventHash)
			}
			// The generic canonicalizer agrees with the typed encoder.
			generic, err := contracts.Canonicalize(v.EventWithoutHash)
			if err != nil || string(generic) != string(canon) {
				t.Fatalf("typed encoder disagrees with contracts.Canonicalize: %v", err)
			}
			// Sealed bytes parse back and verify.
			sealed, err := e.Seal()
			if err != nil {
				t.Fatal(err)
			}
			back, err := audit.ParseEvent(sealed)
			if err != nil {
				t.Fatal(err)
			}
			if back.EventHash != v.EventHash {
				t.Fatal("parsed hash differs")
			}
			// The IP hash is HMAC-SHA256 over the canonical IP text.
			if ip := v.InputContext.ClientIP; ip != nil && *ip != "unknown" {
				a := netip.MustParseAddr(*ip)
				got := audit.HashIP([]byte(v.InputContext.IPHMACKey), audit.CanonicalIP(a))
				if got != e.HTTP.ClientIPHash {
					t.Fatalf("ip hash %s, want %s", got, e.HTTP.ClientIPHash)
				}
			}
			// Rebuild the event from its inputs through the builder.
			rebuildFromInputs(t, v, &e)
		})
	}
}

func rebuildFromInputs(t *testing.T, v eventVector, want *audit.Event) {
	ts, err := want.Time()
	if err != nil {
		t.Fatal(err)
	}
	allow := map[string][]string{}
	meta := v.InputContext.UnfilteredMeta
	if meta == nil {
		meta = map[string]any{}
		for k, x := range want.Meta {
			meta[k] = x
		}
	}
	for k := range want.Meta {
		if k != audit.MetaRedactionApplied && k != audit.MetaRedactedKeys {
			allow[want.SurfaceID] = append(allow[want.SurfaceID], k)
		}
	}
	markers := audit.MarkersNormative
	if v.Name == knownBadMarkers {
		markers = audit.MarkersNone
	}
	cfg := audit.BuilderConfig{MetaAllowlist: allow, Markers: markers, NewID: func() string { return want.EventID }}
	if v.InputContext.IPHMACKey != "" {
		cfg.IPHashKey = []byte(v.InputContext.IPHMACKey)
		cfg.IPHashKeyID = v.InputContext.IPHMACKeyID
	}
	b, err := audit.NewEventBuilder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(want.HTTP.Method, "http://gw.example"+want.HTTP.Path+"?secret=1", nil)
	r.RemoteAddr = "0.0.0.0:1"
	if ip := v.InputContext.ClientIP; ip != nil && *ip != "unknown" {
		r.RemoteAddr = netip.AddrPortFrom(netip.MustParseAddr(*ip), 443).String()
	} else {
		cfg.IPHashKey = nil
	}
	if ip := v.InputContext.ClientIP; ip == nil || *ip == "unknown" {
		b, _ = audit.NewEventBuilder(audit.BuilderConfig{MetaAllowlist: allow, Markers: markers, NewID: cfg.NewID})
	}
	got, err := b.Build(r, audit.Decision{
		RequestID: want.RequestID, SurfaceID: want.SurfaceID, TemplatePath: want.HTTP.Path,
		Status: want.HTTP.StatusCode, Outcome: want.Outcome, Principal: want.Principal, Meta: meta, Time: ts,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.EventHash != v.EventHash {
		a, _ := got.MarshalCanonical()
		t.Fatalf("builder hash %s, want %s\n%s", got.EventHash, v.EventHash, a)
	}
	// With the normative markers, the known-bad vector cannot match.
	if v.Name == knownBadMarkers {
		nb, _ := audit.NewEventBuilder(audit.BuilderConfig{MetaAllowlist: allow, NewID: cfg.NewID})
		other, err := nb.Build(r, audit.Decision{RequestID: want.RequestID, SurfaceID: want.SurfaceID,
			TemplatePath: want.HTTP.Path, Status: want.HTTP.StatusCode, Outcome: want.Outcome,
			Principal: want.Principal, Meta: meta, Time: ts})
		if err != nil || other.EventHash == v.EventHash || other.Meta[audit.MetaRedactedKeys] != "secret_key" {
			t.Fatalf("normative markers on %s: %v %v", knownBadMarkers, err, other.Meta)
		}
	}
}

func mustHex(t *testing.T, s string) string {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sampleEvent(i int) audit.Event {
	return audit.Event{
		SchemaID: audit.EventSchemaID, SchemaVersion: audit.EventSchemaVersion,
		EventID:   contracts.NewUUIDv7At(time.Date(2026, 1, 11, 18, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)),
		TS:        time.Date(2026, 1, 11, 18, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond).Format(audit.TimeFormat),
		RequestID: "req-1", SurfaceID: "llm.invoke", Outcome: audit.OutcomeSuccess,
		Principal: audit.BearerPrincipal("p-1", "t-1"),
		HTTP:      audit.HTTPInfo{Method: "POST", Path: "/v1/chat/completions", StatusCode: 200},
		Meta:      map[string]any{"model": "gpt-4", "tokens": i, "note": "a\"b\\c\u2028<>&\x01é😀"},
	}
}

func TestEventEncoderMatchesCanonicalize(t *testing.T) {
	e := sampleEvent(7)
	e.Resource = &audit.Resource{ResourceType: "doc", ResourceID: "d-1"}
	e.Meta["ratio"] = 0.25
	e.Meta["big"] = 1e15
	e.Meta["nil"] = nil
	e.Meta["ok"] = true
	e.Meta["\U0001F600k"] = 1
	e.Meta["\uff61k"] = 2
	typed, err := e.CanonicalBytes()
	if err != nil {
		t.Fatal(err)
	}
	// plain has Event's fields and tags but not its methods.
	type plain audit.Event
	type withoutHash struct {
		plain
		EventHash string `json:"event_hash,omitempty"`
	}
	generic, err := contracts.Marshal(withoutHash{plain: plain(e)})
	if err != nil {
		t.Fatal(err)
	}
	if string(typed) != string(generic) {
		t.Fatalf("typed\n%s\ngeneric\n%s", typed, generic)
	}
	// encoding/json writes the contract form too.
	e.Meta = nil
	b, err := json.Marshal(e)
	if err != nil || !strings.Contains(string(b), `"meta":{}`) {
		t.Fatalf("json.Marshal: %s %v", b, err)
	}
}

func TestParseEventRejects(t *testing.T) {
	e := sampleEvent(1)
	sealed, err := e.Seal()
	if err != nil {
		t.Fatal(err)
	}
	mut := map[string]string{
		"tampered":      strings.Replace(string(sealed), `"req-1"`, `"req-2"`, 1),
		"unknown field": strings.Replace(string(sealed), `{"event_hash"`, `{"x":1,"event_hash"`, 1),
		"duplicate":     strings.Replace(string(sealed), `{"event_hash"`, `{"ts":"2026-01-11T18:00:00.000Z","event_hash"`, 1),
		"null team":     strings.Replace(string(sealed), `"team_id":"t-1"`, `"team_id":null`, 1),
		"trailing":      string(sealed) + " {}",
		"bad ts":        strings.Replace(string(sealed), `.001Z`, `Z`, 1),
		"nested meta":   strings.Replace(string(sealed), `"model":"gpt-4"`, `"model":{"a":1}`, 1),
	}
	for name, m := range mut {
		if _, err := audit.ParseEvent([]byte(m)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if contracts.CodeOf(err) == "" {
			t.Errorf("%s: untyped error %v", name, err)
		}
	}
	if _, err := audit.ParseEvent([]byte(mut["tampered"])); !errors.Is(err, audit.ErrChainBroken) {
		t.Errorf("tampered: %v", err)
	}
}

func TestBuilderFailsClosed(t *testing.T) {
	b, err := audit.NewEventBuilder(audit.BuilderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/v1/items/42?token=secret", nil)
	d := audit.Decision{RequestID: "r", SurfaceID: "items.get", Status: 403, Principal: audit.AnonymousPrincipal(),
		Meta: map[string]any{"token": "secret"}}
	if _, err := b.Build(r, d); err == nil {
		t.Fatal("raw path used without RawPathUnsafe")
	}
	d.TemplatePath = "/v1/items/{id}"
	e, err := b.Build(r, d)
	if err != nil {
		t.Fatal(err)
	}
	if e.Outcome != audit.OutcomeDenied || e.HTTP.ClientIPHash != "" {
		t.Fatalf("%+v", e)
	}
	if _, leaked := e.Meta["token"]; leaked || e.Meta[audit.MetaRedactedKeys] != "token" {
		t.Fatalf("meta %v", e.Meta)
	}
	if _, err := audit.NewEventBuilder(audit.BuilderConfig{IPHashKey: []byte("k")}); err == nil {
		t.Fatal("key without id accepted")
	}
	// IPv4-mapped IPv6 hashes like IPv4.
	if audit.CanonicalIP(netip.MustParseAddr("::ffff:192.168.1.1")) != "192.168.1.1" ||
		audit.CanonicalIP(netip.MustParseAddr("2001:0DB8:0:0::1")) != "2001:db8::1" {
		t.Fatal("canonical ip")
	}
}
