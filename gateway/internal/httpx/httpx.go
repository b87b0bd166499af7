// Package httpx holds the JSON edge every gateway package shares: the
// strict request-body decoder (one size bound, the contracts' strict
// rules and the case-fold rule of every surface), the JSON response
// writer, and a bounded file reader. It is not API: packages of the
// gateway module use it so that each surface reads and writes JSON the
// same way the examples/server service always has.
package httpx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/readbody"
)

// MaxBody bounds the JSON body of every kernel, admin, A2A and audit API
// request. Larger bodies get TALOS_INVALID_INPUT and nothing is applied.
const MaxBody = 64 << 10

// DecodeJSON reads a JSON body of at most MaxBody bytes into v with the
// strict rules of contracts.UnmarshalStrict: duplicate keys, unknown or
// mis-cased fields, null, floats and trailing data are refused; so are
// objects, at any depth (maps included), with two keys equal under case
// folding (contracts.CheckCaseFold). The body read is left in r.Body for
// handlers that need the bytes again. Every failure is a
// *contracts.Error with code TALOS_INVALID_INPUT.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readbody.Read(http.MaxBytesReader(w, r.Body, MaxBody), MaxBody, r.ContentLength)
	if err != nil || len(body) > MaxBody {
		return contracts.New(contracts.CodeInvalidInput, "request body too large or unreadable")
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := contracts.UnmarshalStrictFold(body, v); err != nil {
		return contracts.Wrap(contracts.CodeInvalidInput, "invalid request body", err)
	}
	return nil
}

// WriteJSON writes v as JSON with status, Content-Type application/json
// and X-Content-Type-Options nosniff. A value that does not encode is
// answered with the contract's INTERNAL error body and status 500.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"code":"INTERNAL","message":"response encoding failed","retryable":false}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// ExtendWriteDeadline moves the response's write deadline to d from now,
// for a handler that waits on an upstream before it writes
// (http.ResponseController; writers that cannot, such as test recorders,
// keep the deadline they have).
func ExtendWriteDeadline(w http.ResponseWriter, d time.Duration) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}

// ReadFileLimited reads at most limit bytes of path, failing when the file
// is longer.
func ReadFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("file larger than %d bytes", limit)
	}
	return b, nil
}
