package talos

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"
)

// An Observation is what the Talos layer learned about one request, for an
// access log or per-request metrics kept outside it: an [Attester] records
// the route's opcode, the verified principal and why it refused a request;
// a [Kernel] records its decision. Create one with [Observe] in a handler
// that wraps them (see [AccessLog]); read it after the inner handler
// returns. It holds no token, signature or body.
type Observation struct {
	// Route is the matched route's pattern and Opcode its opcode (both ""
	// for a request no Attester matched).
	Route, Opcode string
	// Principal is the verified principal, zero when attestation failed.
	Principal identity.DID
	// Surface is the Kernel call's SurfaceID, when a Kernel ran.
	Surface string
	// Decided reports that a Kernel (or a capability middleware) decided;
	// Allowed and Reason are its decision.
	Decided bool
	Allowed bool
	Reason  capability.ReasonCode
	// Code is the contract error code of a refusal ("" when allowed).
	Code string
}

type observationKey struct{}

// Observe returns ctx carrying a new Observation that the Attesters and
// Kernels serving requests with that context fill in.
func Observe(ctx context.Context) (context.Context, *Observation) {
	o := new(Observation)
	return context.WithValue(ctx, observationKey{}, o), o
}

func observationFrom(ctx context.Context) *Observation {
	o, _ := ctx.Value(observationKey{}).(*Observation)
	return o
}

// AccessLog returns a handler that writes one structured log line per
// request to logger after next has answered: method, path (never the
// query string), the route pattern an Attester matched, status, bytes,
// latency, and what
// the Talos layer observed (opcode, principal, surface, decision reason,
// error code). Request and response bodies, headers, tokens and query
// strings are never logged. Denied and failed requests are logged at
// Warn, server errors at Error, the rest at Info.
func AccessLog(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		ctx, obs := Observe(r.Context())
		rec := &statusRecorder{ResponseWriter: w}
		r = r.WithContext(ctx)
		next.ServeHTTP(rec, r)
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		level := slog.LevelInfo
		switch {
		case status >= 500:
			level = slog.LevelError
		case status >= 400:
			level = slog.LevelWarn
		}
		if !logger.Enabled(ctx, level) {
			return
		}
		attrs := make([]slog.Attr, 0, 12)
		attrs = append(attrs,
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Int64("bytes", rec.n),
			slog.Duration("latency", time.Since(began)),
		)
		switch {
		case obs.Route != "":
			attrs = append(attrs, slog.String("route", obs.Route), slog.String("opcode", obs.Opcode))
		case r.Pattern != "": // next is a ServeMux and no Attester matched
			attrs = append(attrs, slog.String("route", r.Pattern))
		}
		if !obs.Principal.IsZero() {
			attrs = append(attrs, slog.String("principal", obs.Principal.String()))
		}
		if obs.Surface != "" {
			attrs = append(attrs, slog.String("surface", obs.Surface))
		}
		if obs.Decided {
			attrs = append(attrs, slog.Bool("allowed", obs.Allowed), slog.String("reason", string(obs.Reason)))
		}
		if obs.Code != "" {
			attrs = append(attrs, slog.String("code", obs.Code))
		}
		logger.LogAttrs(ctx, level, "request", attrs...)
	})
}

// statusRecorder notes the status and size of a response. It passes
// Flush and Unwrap through, so streaming (SSE) and http.ResponseController
// keep working behind AccessLog.
type statusRecorder struct {
	http.ResponseWriter
	status int
	n      int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.n += int64(n)
	return n, err
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
