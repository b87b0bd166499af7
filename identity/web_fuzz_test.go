package identity

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzDIDWebURL: DIDWebURL never panics, and every URL it returns is an
// https URL without user info, query or fragment, whose path ends in
// did.json, so no DID can steer the resolver to another scheme, port form or
// credentials.
func FuzzDIDWebURL(f *testing.F) {
	for _, s := range []string{
		"did:web:example.com", "did:web:example.com:user:alice", "did:web:localhost%3A8443",
		"did:web:example.com%2Fevil", "did:web:user@evil.com", "did:web:", "did:key:z6Mk", "did:web:a..b",
		"did:web:example.com:..:x", "did:web:exa mple.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, did string) {
		u, err := DIDWebURL(did)
		if err != nil {
			return
		}
		p, perr := url.Parse(u)
		if perr != nil {
			t.Fatalf("%q → %q does not parse: %v", did, u, perr)
		}
		if p.Scheme != "https" || p.User != nil || p.RawQuery != "" || p.Fragment != "" || p.Host == "" {
			t.Fatalf("%q → unsafe URL %q", did, u)
		}
		if !strings.HasSuffix(p.Path, "/did.json") || strings.Contains(p.Path, "/../") || strings.Contains(p.Path, "/./") {
			t.Fatalf("%q → unexpected path %q", did, p.Path)
		}
	})
}
