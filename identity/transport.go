package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/talosgo/talos/contracts"
)

// An OpcodeSource returns the server's opcode for a request's route: the
// opcode the request's attestation must cover. A *talos.RouteTable is one,
// so clients sign with the table servers verify with; its Opcode method
// has the signature of AttestationVerifierConfig.Opcode. An error with
// code NOT_FOUND means the request has no attested route.
type OpcodeSource interface {
	Opcode(r *http.Request) (string, error)
}

// OpcodeFunc adapts a function to an OpcodeSource.
type OpcodeFunc func(r *http.Request) (string, error)

// Opcode returns f(r).
func (f OpcodeFunc) Opcode(r *http.Request) (string, error) { return f(r) }

// An AttestingTransport is an http.RoundTripper that signs every outgoing
// request with HTTP attestation v1 before passing it on: the client side of
// an attested API, for agents calling a Talos service (including MCP clients,
// whose streamable-HTTP transport takes an *http.Client).
//
// Attested bodies must be JSON or empty (the signature covers their
// canonical JSON): any other body, or a JSON object repeating a key, fails
// before anything is sent, with an error saying which.
//
// It is safe for concurrent use if its Signer, Routes and Base are.
type AttestingTransport struct {
	// Signer signs each request. Required.
	Signer *AttestationSigner
	// Routes gives each request's opcode (its route's, which the
	// signature covers): normally the same *talos.RouteTable the server
	// verifies with. Required.
	Routes OpcodeSource
	// SendUnrouted sends requests Routes has no route for (a NOT_FOUND
	// error) unattested, for public routes such as /health. If false, such
	// requests fail before anything is sent.
	SendUnrouted bool
	// Header, if set, is added to every attested request after signing;
	// headers are not covered by the signature (for example
	// X-Talos-Capability).
	Header http.Header
	// Base performs the request. If nil, http.DefaultTransport is used.
	Base http.RoundTripper
}

// RoundTrip signs a clone of r and sends it. It does not modify r. Errors
// from routing or signing (no route, a body that is not JSON or repeats a
// key, a bad opcode) are *contracts.Error values returned before anything
// is sent.
func (t *AttestingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	fail := func(err error) (*http.Response, error) {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, err
	}
	if t.Signer == nil || t.Routes == nil {
		return fail(contracts.New(contracts.CodeInvalidInput, "identity: AttestingTransport.Signer and .Routes are required"))
	}
	op, err := t.Routes.Opcode(r)
	if err != nil {
		if t.SendUnrouted && errors.Is(err, contracts.ErrNotFound) {
			return base.RoundTrip(r)
		}
		return fail(contracts.Wrap(contracts.CodeOf(err), "identity: no attested route for "+r.Method+" "+r.URL.Path, err))
	}
	c := r.Clone(r.Context())
	if r.Body != nil && r.Body != http.NoBody {
		var body []byte
		if r.GetBody != nil {
			rc, err := r.GetBody()
			if err != nil {
				return fail(contracts.Wrap(contracts.CodeInvalidInput, "identity: attestation: reading the request body", err))
			}
			body, err = io.ReadAll(io.LimitReader(rc, t.Signer.cfg.MaxBodySize+1))
			rc.Close()
			if err != nil {
				return fail(contracts.Wrap(contracts.CodeInvalidInput, "identity: attestation: reading the request body", err))
			}
		} else {
			body, err = io.ReadAll(io.LimitReader(r.Body, t.Signer.cfg.MaxBodySize+1))
			if err != nil {
				return fail(contracts.Wrap(contracts.CodeInvalidInput, "identity: attestation: reading the request body", err))
			}
		}
		if err := CheckAttestedBody(body); err != nil {
			return fail(err)
		}
		c.Body = io.NopCloser(bytes.NewReader(body))
	}
	if err := t.Signer.Sign(c, op); err != nil {
		return fail(err)
	}
	if r.Body != nil {
		r.Body.Close()
	}
	for k, vs := range t.Header {
		for _, v := range vs {
			c.Header.Add(k, v)
		}
	}
	return base.RoundTrip(c)
}

// CheckAttestedBody reports whether body can be attested: HTTP attestation
// v1 signs the canonical JSON of the body, so it must be empty or one JSON
// value that canonicalizes. The errors (code TALOS_INVALID_INPUT) say which
// rule failed: not JSON, a duplicate object key (named), or a value
// canonical JSON refuses (a number beyond ±(2^53−1), nesting too deep, a
// lone surrogate).
func CheckAttestedBody(body []byte) error {
	if len(body) == 0 {
		return nil
	}
	if !json.Valid(body) {
		return contracts.New(contracts.CodeInvalidInput,
			"identity: attested request bodies must be JSON or empty (HTTP attestation v1 signs their canonical JSON); this body is not JSON")
	}
	if key, ok := duplicateKey(body); ok {
		return contracts.New(contracts.CodeInvalidInput,
			"identity: attested request body repeats the key "+strconv.Quote(key)+" in one object: canonical JSON refuses duplicate keys")
	}
	if _, err := contracts.Canonicalize(body); err != nil {
		return contracts.Wrap(contracts.CodeInvalidInput, "identity: attested request body has no canonical JSON form", err)
	}
	return nil
}

// duplicateKey returns the first key that one object of the valid JSON
// value body repeats.
func duplicateKey(body []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		keys  map[string]bool
		isObj bool
		key   bool // the next token in an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.isObj && top.key {
			if s, ok := tok.(string); ok {
				if top.keys[s] {
					return s, true
				}
				top.keys[s] = true
				top.key = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, isObj: true, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: in an object, a key comes next.
		if len(stack) > 0 && stack[len(stack)-1].isObj {
			stack[len(stack)-1].key = true
		}
	}
}
