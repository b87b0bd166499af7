package identity

import (
	"net/http"
)

// An AttestingTransport is an http.RoundTripper that signs every outgoing
// request with HTTP attestation v1 before passing it on: the client side of
// an attested API, for agents calling a Talos service (including MCP clients,
// whose streamable-HTTP transport takes an *http.Client).
//
// It is safe for concurrent use if its Signer and Base are.
type AttestingTransport struct {
	// Signer signs each request. Required.
	Signer *AttestationSigner
	// Opcode returns the server's opcode for a request (the route's
	// opcode, which the signature covers). Required.
	Opcode func(r *http.Request) string
	// Header, if set, is added to every request after signing; headers are
	// not covered by the signature (for example X-Talos-Capability).
	Header http.Header
	// Base performs the request. If nil, http.DefaultTransport is used.
	Base http.RoundTripper
}

// RoundTrip signs a clone of r and sends it. It does not modify r. Errors
// from signing (an unreadable or non-JSON body, a bad opcode) are returned
// before anything is sent.
func (t *AttestingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c := r.Clone(r.Context())
	if r.Body != nil && r.GetBody != nil {
		body, err := r.GetBody()
		if err != nil {
			return nil, err
		}
		c.Body = body
	}
	if err := t.Signer.Sign(c, t.Opcode(c)); err != nil {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, err
	}
	for k, vs := range t.Header {
		for _, v := range vs {
			c.Header.Add(k, v)
		}
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(c)
}
