package mcp

import (
	"encoding/json"
	"testing"

	"github.com/talosgo/talos/contracts"
)

// FuzzCheckJSONRPC: CheckJSONRPC accepts only bodies a case-sensitive
// reader (encoding/json into a map, as the upstream side reads) sees as
// one JSON-RPC 2.0 message with a string method; refusals are typed.
func FuzzCheckJSONRPC(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"files.read","arguments":{"path":"/a"}}}`,
		`{"jsonrpc":"2.0","id":1,"Method":"tools/call","method":"tools/list"}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":1,"A":2}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		err := CheckJSONRPC(body)
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Fatalf("refusal %v is not INVALID_INPUT", err)
			}
			return
		}
		var upstream map[string]any
		if json.Unmarshal(body, &upstream) != nil {
			t.Fatalf("accepted JSON-RPC the upstream cannot read: %q", body)
		}
		if _, ok := upstream["method"].(string); !ok || upstream["jsonrpc"] != "2.0" {
			t.Fatalf("%q: accepted, but a case-sensitive reader sees no method or version", body)
		}
		if err := contracts.CheckCaseFold(body); err != nil {
			t.Fatalf("%q: accepted with keys equal under case folding: %v", body, err)
		}
	})
}
