package audit

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestReadCanonicalFastPath: AppendEntry's one-pass reader takes every
// sealed event (so the fast path is the one canonical input takes) and
// reads the same value ParseEvent does.
func TestReadCanonicalFastPath(t *testing.T) {
	ts := time.Date(2026, 1, 11, 18, 0, 0, 0, time.UTC)
	base := Event{
		SchemaID: EventSchemaID, SchemaVersion: EventSchemaVersion,
		EventID: "019b9e1c-7a00-7000-8000-000000000001", TS: ts.Format(TimeFormat),
		RequestID: "req-1", SurfaceID: "llm.invoke", Outcome: OutcomeSuccess,
		Principal: BearerPrincipal("p-1", "t-1"),
		HTTP:      HTTPInfo{Method: "POST", Path: "/v1/chat", StatusCode: 200},
	}
	rich := base
	rich.Principal = SignedPrincipal("a\"\\\n\x01", "é😀", "k")
	rich.HTTP.ClientIPHash, rich.HTTP.ClientIPHashAlg, rich.HTTP.ClientIPHashKeyID = strings.Repeat("0f", 32), IPHashAlg, "kid"
	rich.Resource = &Resource{ResourceID: "r\t"}
	rich.Meta = map[string]any{"a": "x", "b": true, "c": false, "d": nil, "e": 12, "f": -1.25, "\U0001F600": "\u2028"}
	onlyType := base
	onlyType.Resource = &Resource{ResourceType: "tool"}
	empty := base
	empty.Resource = &Resource{}
	for _, e := range []Event{base, rich, onlyType, empty} {
		sealed, err := e.Seal()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := readCanonical(sealed)
		if !ok {
			t.Fatalf("readCanonical refused a sealed event: %s", sealed)
		}
		want, err := ParseEvent(sealed)
		if err != nil {
			t.Fatal(err)
		}
		if want.Meta == nil {
			want.Meta = map[string]any{}
		}
		if !reflect.DeepEqual(&got, want) {
			t.Fatalf("readCanonical %+v\nParseEvent %+v", got, *want)
		}
		if _, isNum := got.Meta["e"].(json.Number); len(got.Meta) > 0 && !isNum {
			t.Fatalf("meta number read as %T", got.Meta["e"])
		}
	}
}
