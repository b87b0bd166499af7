package talos

import (
	"encoding/json"
	"errors"
	"net/http"

	"go.opentelemetry.io/otel/trace"

	"github.com/talosgo/talos/contracts"
)

// WriteError answers r with the contract error object {code, message,
// details?, request_id?, retryable} of err, with the status
// contracts.HTTPStatus gives its code; every middleware of this package
// answers through it, and server handlers should too, so that clients see
// one error format.
//
// err's first *contracts.Error decides the body; its Cause is never
// written. An error that is not a *contracts.Error, and every INTERNAL
// error, is written as INTERNAL with the message "internal error" and no
// details: back-end detail stays in the server's traces and logs. The
// request id is the trace id of r's span, when there is one, so that an
// error a client reports can be found in the traces. The response is
// marked no-store and nosniff.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var ce *contracts.Error
	if !errors.As(err, &ce) {
		ce = &contracts.Error{Code: contracts.CodeInternal}
	}
	body := *ce
	body.Cause = nil
	if body.Code == "" || body.Code == contracts.CodeInternal {
		body.Code = contracts.CodeInternal
		body.Message = "internal error"
		body.Details = nil
	}
	if r != nil {
		if o := observationFrom(r.Context()); o != nil && o.Code == "" {
			o.Code = string(body.Code)
		}
		if sc := trace.SpanContextFromContext(r.Context()); sc.HasTraceID() {
			body.RequestID = sc.TraceID().String()
		}
	}
	b, jerr := json.Marshal(&body)
	if jerr != nil {
		// Only Details can fail to encode: drop them.
		body.Details = nil
		b, _ = json.Marshal(&body)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(contracts.HTTPStatus(body.Code))
	_, _ = w.Write(append(b, '\n'))
}

// retryable reports whether err's first *contracts.Error is retryable.
func retryable(err error) bool {
	var ce *contracts.Error
	return errors.As(err, &ce) && ce.Retryable
}
