package main

import (
	"net/url"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
)

// FuzzUpstreamURLPolicy: an admin-supplied upstream URL is accepted only
// as an absolute http(s) URL without credentials, query or fragment, and
// refused with TALOS_INVALID_INPUT otherwise; never a panic.
func FuzzUpstreamURLPolicy(f *testing.F) {
	for _, s := range []string{"https://api.example.com/v1", "http://127.0.0.1:1/", "http://u:p@h/", "http://[::1]/", "ftp://x", "http://h/?q#f", "http://0x7f000001/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, p := range []urlPolicy{{}, {allowLoopback: true, allowPrivate: true}} {
			err := p.check(raw)
			if err != nil {
				if contracts.CodeOf(err) != contracts.CodeInvalidInput {
					t.Fatalf("%q: %v", raw, err)
				}
				continue
			}
			u, perr := url.Parse(raw)
			if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(raw, " \n") {
				t.Fatalf("accepted %q", raw)
			}
		}
	})
}

// FuzzValidIDs: the admin path ids accepted are path-safe.
func FuzzValidIDs(f *testing.F) {
	f.Add("gpt-4o")
	f.Add("a/b")
	f.Fuzz(func(t *testing.T, id string) {
		if validModelGroupID(id) && strings.ContainsAny(id, "/?#% ") {
			t.Fatalf("model group id %q", id)
		}
		if validSecretID(id) && (id == "" || strings.ContainsAny(id, " \n\x00")) {
			t.Fatalf("secret id %q", id)
		}
	})
}
