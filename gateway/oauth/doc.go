// Package oauth makes a Talos gateway an OAuth 2.1 resource server, as the
// MCP authorization specification (2025-06-18 and later) asks of MCP
// servers, so that stock MCP clients can call it with an access token from
// an authorization server the operator trusts.
//
// A [Verifier], built with [NewVerifier] from a [Config], does three things:
//
//   - It publishes the protected resource metadata of RFC 9728
//     ([Verifier.MetadataHandler], served at each of [Verifier.MetadataPaths]:
//     /.well-known/oauth-protected-resource and its variant suffixed with
//     the resource's path): resource, authorization_servers,
//     scopes_supported and bearer_methods_supported ("header" only).
//   - It builds the WWW-Authenticate challenges of RFC 6750 and RFC 9728
//     ([Verifier.Challenge]): Bearer resource_metadata="…", with
//     error="invalid_token" or error="insufficient_scope" and the scopes a
//     request needs.
//   - It verifies bearer access tokens that are JWTs (RFC 9068 profile)
//     ([Verifier.Verify]): compact JWS only, at most [MaxTokenSize] bytes;
//     the signing algorithm in an allowlist (RS256, ES256, EdDSA; never
//     "none" or an HMAC, so a public key can never be used as a shared
//     secret); typ, when present, at+jwt (or the generic JWT), so that
//     JWTs of other kinds are refused; the key found by kid in the
//     issuer's JWKS and of the type
//     the algorithm needs (RSA keys of at least 2048 bits, P-256, Ed25519);
//     iss equal to the configured issuer, byte for byte; aud containing the
//     resource's canonical URI (RFC 8707: a token minted for another
//     resource is refused); exp required, nbf and iat honoured, each with
//     a bounded clock skew ([Config.Leeway], at most [MaxLeeway]).
//
// The JWKS is found through the issuer's metadata (RFC 8414
// /.well-known/oauth-authorization-server, then OpenID Connect discovery),
// whose issuer must equal the configured one, unless [Config.JWKSURL] names
// it. It is cached for [Config.CacheTTL]; a token with an unknown kid makes
// the Verifier fetch it again, at most once per [Config.MinRefreshInterval],
// so that a flood of made-up kids cannot turn the gateway into a traffic
// amplifier against the issuer. A JWKS that cannot be fetched (and is not
// cached) fails closed: every token is refused with a retryable INTERNAL
// error, never accepted. Documents fetched are bounded ([MaxDocumentSize]).
//
// Errors are *contracts.Error values: AUTH_INVALID for a token that does
// not verify (with the RFC 6750 error code in [ErrorCode]), AUTH_EXPIRED
// for one past its exp, INTERNAL (retryable) when the issuer's keys
// cannot be obtained. Their messages never contain the token.
//
// What a verified token may do is the caller's business: [Claims] carries
// the subject, client_id and scopes, and [Claims.Principal] picks the
// configured claim; the server maps it to a registered principal and
// scopes to capability grants (see examples/server).
package oauth
