package main

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// uiFiles are the admin dashboard's assets (examples/server/ui/static):
// plain ES modules, one stylesheet and one page, with no build step and no
// third-party code, embedded in the binary.
//
//go:embed ui/static
var uiFiles embed.FS

// uiCSP is the dashboard's Content-Security-Policy: only its own scripts,
// styles and API, images from itself or data: URLs, no framing, no <base>,
// no form submission.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// mountUI serves the admin dashboard at /ui/ (GET /ui redirects there).
// The assets are public; every API call the dashboard makes carries an
// admin session as a bearer token, which the page takes from the URL
// fragment (#session=…, never sent to the server) or from a paste, and
// keeps in sessionStorage. No cookie is set or read.
//
//	GET /ui/   the dashboard (index.html, *.js, style.css)
func (s *Server) mountUI(mux *http.ServeMux) {
	mux.Handle("GET /ui/", uiHandler())
	mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		uiHeaders(w)
		http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
	})
}

// uiHandler serves the embedded assets under /ui/ with the dashboard's
// security headers.
func uiHandler() http.Handler {
	sub, err := fs.Sub(uiFiles, "ui/static")
	if err != nil {
		panic(err) // the embed pattern names this directory
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uiHeaders(w)
		name := strings.TrimPrefix(r.URL.Path, "/ui/")
		if name == "" {
			name = "index.html"
		}
		// Only files: no directory listings, and a missing asset is the
		// contract's 404 like every other unknown path.
		if fi, err := fs.Stat(sub, name); err != nil || fi.IsDir() || name == "index.html" && r.URL.Path != "/ui/" {
			handleNotFound(w, r)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + name
		if name == "index.html" {
			r2.URL.Path = "/"
		}
		files.ServeHTTP(w, r2)
	})
}

func uiHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-cache")
}
