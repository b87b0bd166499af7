package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/talosgo/talos/contracts"
)

// DefaultStreamTimeout bounds a whole streamed completion when
// Config.StreamTimeout is zero.
const DefaultStreamTimeout = 10 * time.Minute

// errIdle is the cause of a stream canceled because the upstream sent
// nothing for Config.Timeout.
var errIdle = errors.New("llm: upstream stream idle")

// withUsage returns body with stream_options.include_usage set to true, by
// decoding the checked document and encoding it again (never by splicing
// bytes), and whether the client had asked for the usage chunk itself (then
// body is returned as is). The caller checks the result again, so the
// bytes forwarded are the bytes checked.
func withUsage(body []byte) ([]byte, bool, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil || doc == nil {
		return nil, false, contracts.Errorf(contracts.CodeInvalidInput, "request body is not a JSON object")
	}
	opts := map[string]json.RawMessage{}
	if raw, ok := doc["stream_options"]; ok && string(raw) != "null" {
		if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &opts) != nil {
			return nil, false, contracts.Errorf(contracts.CodeInvalidInput, "stream_options must be an object")
		}
	}
	if string(opts["include_usage"]) == "true" {
		return body, true, nil
	}
	opts["include_usage"] = json.RawMessage("true")
	enc := func(v any) ([]byte, error) {
		var b bytes.Buffer
		e := json.NewEncoder(&b)
		e.SetEscapeHTML(false)
		if err := e.Encode(v); err != nil {
			return nil, err
		}
		return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
	}
	ob, err := enc(opts)
	if err != nil {
		return nil, false, contracts.Errorf(contracts.CodeInvalidInput, "stream_options cannot be encoded")
	}
	doc["stream_options"] = ob
	out, err := enc(doc)
	if err != nil {
		return nil, false, contracts.Errorf(contracts.CodeInvalidInput, "request body cannot be encoded")
	}
	return out, false, nil
}

// streamCall is one streamed completion being proxied.
type streamCall struct {
	body        []byte // the checked bytes forwarded
	choices     int64
	maxTokens   int64
	worstCase   int64
	hard        bool // cut the stream at the reservation
	clientUsage bool // the client asked for the usage chunk
}

// streamEnd says how a stream ended, for the audit event.
type streamEnd string

// stream forwards a streamed completion: it sends the request, and once
// the upstream answers with an event stream, writes the response header
// and passes each chunk through (flushed, the write deadline extended per
// chunk), counting the completion tokens it carries. It returns the tokens
// to charge, whether the response was started (after which the caller
// must not write an error body) and, before that, the error to refuse with.
// A failure after the start ends the stream with an error event and
// charges what was streamed.
func (l *Proxy) stream(ctx, client context.Context, w http.ResponseWriter, sc streamCall) (int64, bool, streamEnd, error) {
	ctx, cancelAll := context.WithTimeout(ctx, l.cfg.StreamTimeout)
	defer cancelAll()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := time.AfterFunc(l.cfg.Timeout, func() { cancel(errIdle) })
	defer idle.Stop()
	streamDeadline := time.Now().Add(l.cfg.StreamTimeout)

	resp, err := l.send(ctx, sc.body)
	if err != nil {
		if errors.Is(context.Cause(ctx), errIdle) {
			err = contracts.Errorf(contracts.CodeUpstreamTimeout, "upstream timed out")
		}
		return 0, false, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false, "", upstreamStatus(resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/event-stream" {
		return 0, false, "", contracts.Errorf(contracts.CodeUpstream5xx, "upstream answered a stream request without an event stream")
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()

	var counted int64
	var usage *streamUsage
	limit := sc.choices * sc.maxTokens
	end := streamEnd("done")
	rd := NewSSEReader(resp.Body)
	var buf []byte
	for {
		data, err := rd.Next()
		if err != nil {
			switch {
			case client.Err() != nil:
				end = "client_gone"
			case errors.Is(context.Cause(ctx), errIdle) || errors.Is(ctx.Err(), context.DeadlineExceeded):
				end = "timeout"
				l.streamError(w, rc, contracts.Errorf(contracts.CodeUpstreamTimeout, "upstream timed out"))
			case errors.Is(err, io.EOF):
				end = "upstream_error"
				l.streamError(w, rc, errStream("ended before [DONE]"))
			default:
				end = "upstream_error"
				if contracts.CodeOf(err) != contracts.CodeUpstream5xx {
					err = errStream("read failed")
				}
				l.streamError(w, rc, err)
			}
			break
		}
		idle.Reset(l.cfg.Timeout)
		if string(data) == "[DONE]" {
			l.extend(rc, streamDeadline)
			if _, err := io.WriteString(w, "data: [DONE]\n\n"); err != nil {
				end = "client_gone"
			}
			_ = rc.Flush()
			break
		}
		chunk, n, err := ParseStreamChunk(data, sc.choices)
		if err != nil {
			end = "upstream_error"
			l.streamError(w, rc, err)
			break
		}
		if chunk.Usage != nil {
			usage = chunk.Usage
		}
		if sc.hard && counted+n > limit {
			// The chunk would take the completion past what was reserved:
			// it is not sent, and the stream ends here.
			end = "budget_cut"
			l.streamError(w, rc, contracts.Errorf(contracts.CodeBudgetExceeded, "the completion reached its reserved budget").WithRetryable(true))
			break
		}
		counted += n
		if len(chunk.Choices) == 0 && chunk.Usage != nil && !sc.clientUsage {
			continue // the usage chunk the proxy asked for
		}
		buf = buf[:0]
		for ln := range bytes.SplitSeq(data, []byte{'\n'}) {
			buf = append(append(append(buf, "data: "...), ln...), '\n')
		}
		buf = append(buf, '\n')
		l.extend(rc, streamDeadline)
		if _, err := w.Write(buf); err != nil {
			end = "client_gone"
			break
		}
		_ = rc.Flush()
	}
	return streamTokens(sc, counted, usage), true, end, nil
}

// streamTokens is what a stream is charged: the larger of the usage the
// upstream reported and the prompt (reported, or one token per request
// byte) plus the completion tokens counted, bounded by the reservation
// under a hard budget.
func streamTokens(sc streamCall, counted int64, usage *streamUsage) int64 {
	prompt, completion, total := int64(len(sc.body)), counted, int64(0)
	if usage != nil {
		prompt = usage.PromptTokens
		completion = max(completion, usage.CompletionTokens)
		total = usage.TotalTokens
	}
	total = max(total, prompt+completion)
	if sc.hard && total > sc.worstCase {
		total = sc.worstCase
	}
	return total
}

// extend moves the write deadline for the next chunk: the upstream may
// take Config.Timeout to send it (never past the stream's end), and
// writing it Config.WriteTimeout. A server without a write deadline keeps
// none.
func (l *Proxy) extend(rc *http.ResponseController, streamDeadline time.Time) {
	if l.cfg.WriteTimeout <= 0 {
		return
	}
	next := time.Now().Add(l.cfg.Timeout)
	if next.After(streamDeadline) {
		next = streamDeadline
	}
	_ = rc.SetWriteDeadline(next.Add(l.cfg.WriteTimeout))
}

// streamError ends a started stream with an event of type error whose
// data is the contract error body of err.
func (l *Proxy) streamError(w http.ResponseWriter, rc *http.ResponseController, err error) {
	var ce *contracts.Error
	if !errors.As(err, &ce) {
		ce = contracts.Errorf(contracts.CodeInternal, "internal error")
	}
	body := *ce
	body.Cause = nil
	b, jerr := json.Marshal(&body)
	if jerr != nil {
		b = []byte(`{"code":"INTERNAL","message":"internal error","retryable":false}`)
	}
	if l.cfg.WriteTimeout > 0 {
		_ = rc.SetWriteDeadline(time.Now().Add(l.cfg.WriteTimeout))
	}
	w.Write(append(append([]byte("event: error\ndata: "), b...), '\n', '\n'))
	_ = rc.Flush()
}
