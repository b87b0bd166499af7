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
		return nil, false, contracts.New(contracts.CodeInvalidInput, "request body is not a JSON object")
	}
	opts := map[string]json.RawMessage{}
	if raw, ok := doc["stream_options"]; ok && string(raw) != "null" {
		if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &opts) != nil {
			return nil, false, contracts.New(contracts.CodeInvalidInput, "stream_options must be an object")
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
		return nil, false, contracts.New(contracts.CodeInvalidInput, "stream_options cannot be encoded")
	}
	doc["stream_options"] = ob
	out, err := enc(doc)
	if err != nil {
		return nil, false, contracts.New(contracts.CodeInvalidInput, "request body cannot be encoded")
	}
	return out, false, nil
}

// streamCall is one streamed completion being proxied.
type streamCall struct {
	bodies      map[string][]byte // the checked bytes forwarded, by upstream.body
	model       string
	choices     int64
	maxTokens   int64
	hard        bool           // cut the stream at the reservation
	clientUsage bool           // the client asked for the usage chunk
	meta        map[string]any // the call's audit meta: upstream, stream_end
}

// How a started stream ended (audit meta MetaStreamEnd).
const (
	StreamDone          = "done"
	StreamBudgetCut     = "budget_cut"
	StreamUpstreamError = "upstream_error"
	StreamTimeout       = "timeout"
	StreamClientGone    = "client_gone"
)

// errDone ends a chunk source at the end of its stream.
var errDone = errors.New("llm: stream done")

// A chunkSource yields the chat completion chunks of an upstream stream.
type chunkSource interface {
	// next returns the next chunk to pass on (nil: nothing to pass on),
	// the completion tokens it carries, and whether it is only the usage
	// chunk; errDone at the end of the stream.
	next() (chunk []byte, tokens int64, usageOnly bool, err error)
	// usage is the usage the upstream reported, nil if none.
	usage() *streamUsage
}

// openaiSource passes an OpenAI-compatible stream's chunks on as they are.
type openaiSource struct {
	rd      *SSEReader
	choices int64
	u       *streamUsage
}

func (s *openaiSource) usage() *streamUsage { return s.u }

func (s *openaiSource) next() ([]byte, int64, bool, error) {
	data, err := s.rd.Next()
	if errors.Is(err, io.EOF) {
		return nil, 0, false, errStream("ended before [DONE]")
	}
	if err != nil {
		return nil, 0, false, err
	}
	if string(data) == "[DONE]" {
		return nil, 0, false, errDone
	}
	chunk, n, err := ParseStreamChunk(data, s.choices)
	if err != nil {
		return nil, 0, false, err
	}
	if chunk.Usage != nil {
		s.u = chunk.Usage
	}
	return data, n, len(chunk.Choices) == 0 && chunk.Usage != nil, nil
}

// stream forwards a streamed completion: it sends the request to the
// plan's upstreams in turn until one answers with an event stream, then
// writes the response header and passes each chunk on (flushed, the write
// deadline extended per chunk; a KindAnthropic stream translated into
// chat completion chunks), counting the completion tokens each carries.
// It returns the prompt and completion tokens to charge, whether the
// response was started (after which the caller must not write an error
// body) and, before that, the error to refuse with. A failure after the
// start ends the stream with an error event and charges what was
// streamed.
func (l *Proxy) stream(ctx, client context.Context, w http.ResponseWriter, pl plan, sc streamCall) (int64, int64, bool, error) {
	ctx, cancelAll := context.WithTimeout(ctx, l.cfg.StreamTimeout)
	defer cancelAll()
	streamDeadline := time.Now().Add(l.cfg.StreamTimeout)
	var (
		resp *http.Response
		up   *upstream
		idle *time.Timer
		sctx context.Context
		stop context.CancelCauseFunc
	)
	// Retried only until an upstream answers with an event stream: once
	// the answer has started nothing is sent again.
	err := l.attempt(client, pl, func(u *upstream, timeout time.Duration) error {
		actx, cancel := context.WithCancelCause(ctx)
		t := time.AfterFunc(timeout, func() { cancel(errIdle) })
		fail := func(err error) error {
			t.Stop()
			cancel(nil)
			return err
		}
		r, err := l.post(actx, u, sc.bodies[u.body])
		if err != nil {
			return fail(err)
		}
		if r.StatusCode != http.StatusOK {
			r.Body.Close()
			return fail(upstreamStatus(r.StatusCode))
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "text/event-stream" {
			r.Body.Close()
			return fail(contracts.New(contracts.CodeUpstream5xx, "upstream answered a stream request without an event stream"))
		}
		resp, up, idle, sctx, stop = r, u, t, actx, cancel
		return nil
	})
	if err != nil {
		return 0, 0, false, err
	}
	sc.meta[MetaUpstream] = up.name
	end := StreamDone
	defer func() { sc.meta[MetaStreamEnd] = end }()
	defer resp.Body.Close()
	defer idle.Stop()
	defer stop(nil)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()

	rd := NewSSEReader(resp.Body)
	var src chunkSource = &openaiSource{rd: rd, choices: sc.choices}
	if up.kind == KindAnthropic {
		src = &anthropicSource{rd: rd, model: sc.model, created: l.now().Unix()}
	}
	var counted int64
	limit := sc.choices * sc.maxTokens
	var buf []byte
	for {
		chunk, n, usageOnly, err := src.next()
		if err != nil {
			switch {
			case errors.Is(err, errDone):
				l.extend(rc, streamDeadline, pl.timeout)
				if _, err := io.WriteString(w, "data: [DONE]\n\n"); err != nil {
					end = StreamClientGone
				}
				_ = rc.Flush()
			case client.Err() != nil:
				end = StreamClientGone // nothing more to write
			case errors.Is(context.Cause(sctx), errIdle) || errors.Is(sctx.Err(), context.DeadlineExceeded):
				end = StreamTimeout
				l.streamError(w, rc, contracts.New(contracts.CodeUpstreamTimeout, "upstream timed out"))
			default:
				end = StreamUpstreamError
				if contracts.CodeOf(err) != contracts.CodeUpstream5xx {
					err = errStream("read failed")
				}
				l.streamError(w, rc, err)
			}
			break
		}
		idle.Reset(pl.timeout)
		if sc.hard && counted+n > limit {
			// The chunk would take the completion past what was reserved:
			// it is not sent, and the stream ends here.
			end = StreamBudgetCut
			l.streamError(w, rc, contracts.New(contracts.CodeBudgetExceeded, "the completion reached its reserved budget").WithRetryable(true))
			break
		}
		counted += n
		if chunk == nil || (usageOnly && !sc.clientUsage) {
			continue // nothing to pass on, or the usage chunk the proxy asked for
		}
		buf = buf[:0]
		for ln := range bytes.SplitSeq(chunk, []byte{'\n'}) {
			buf = append(append(append(buf, "data: "...), ln...), '\n')
		}
		buf = append(buf, '\n')
		l.extend(rc, streamDeadline, pl.timeout)
		if _, err := w.Write(buf); err != nil {
			end = StreamClientGone
			break
		}
		_ = rc.Flush()
	}
	prompt, completion := streamTokens(int64(len(sc.bodies[up.body])), counted, src.usage())
	return prompt, completion, true, nil
}

// streamTokens is what a stream is charged: the prompt tokens reported
// (or one per request byte), and the larger of the completion tokens
// counted and those reported (tokens of the reported total beyond the
// two counted as completion).
func streamTokens(requestBytes, counted int64, usage *streamUsage) (prompt, completion int64) {
	prompt, completion = requestBytes, counted
	if usage != nil {
		prompt = usage.PromptTokens
		completion = max(completion, usage.CompletionTokens, usage.TotalTokens-usage.PromptTokens)
	}
	return prompt, completion
}

// extend moves the write deadline for the next chunk: the upstream may
// take timeout (the attempt's) to send it (never past the stream's end), and
// writing it Config.WriteTimeout. A server without a write deadline keeps
// none.
func (l *Proxy) extend(rc *http.ResponseController, streamDeadline time.Time, timeout time.Duration) {
	if l.cfg.WriteTimeout <= 0 {
		return
	}
	next := time.Now().Add(timeout)
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
		ce = contracts.New(contracts.CodeInternal, "internal error")
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
