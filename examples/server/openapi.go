package main

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
)

// openapiDoc is the OpenAPI 3.1 document of every route the server mounts,
// generated from examples/server/openapi (go generate ./openapi) and
// embedded. TestOpenAPICoversEveryRoute keeps it complete, and
// TestOpenAPIGenerated keeps it equal to the generator's output.
//
//go:embed openapi/openapi.json
var openapiDoc []byte

// openapiETag is the document's strong entity tag: its SHA-256.
var openapiETag = func() string {
	sum := sha256.Sum256(openapiDoc)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}()

// serveOpenAPI answers GET (and HEAD) /openapi.json without
// authentication: the document describes routes, never state. It carries
// a strong ETag, answers a matching If-None-Match with 304, and may be
// cached for five minutes (the document changes only with the binary).
func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("ETag", openapiETag)
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("X-Content-Type-Options", "nosniff")
	if etagMatches(r.Header.Get("If-None-Match"), openapiETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(openapiDoc)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(openapiDoc)
	}
}

// etagMatches reports whether an If-None-Match header names etag (weak
// comparison, as RFC 9110 asks for If-None-Match) or is "*".
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
