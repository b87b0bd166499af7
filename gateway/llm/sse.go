package llm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"unicode/utf8"

	"github.com/talosgo/talos/contracts"
)

// Limits of an upstream event stream.
const (
	// MaxStreamLine bounds one line of an upstream event stream.
	MaxStreamLine = 1 << 20
	// MaxStreamBytes bounds a whole upstream event stream.
	MaxStreamBytes = 32 << 20
)

// errStream is the refusal of a malformed upstream event stream.
func errStream(msg string) error {
	return contracts.New(contracts.CodeUpstream5xx, "upstream event stream: "+msg)
}

// An SSEReader reads the events of an upstream's server-sent event
// stream (text/event-stream) for [Proxy]: the type and data of each
// event, at most MaxStreamLine bytes a line and MaxStreamBytes in all.
// Comments and the id and retry fields are skipped; an unknown field
// name, a line without a field, bad UTF-8 or a stream ending inside an
// event is refused ([SSEReader.Next], for OpenAI streams, also refuses
// typed events). Errors
// other than io.EOF (the stream ended between events) and the underlying
// reader's are *contracts.Error with code UPSTREAM_5XX.
type SSEReader struct {
	br    *bufio.Reader
	total int64
	data  []byte
}

// NewSSEReader returns a reader of the events in r.
func NewSSEReader(r io.Reader) *SSEReader {
	return &SSEReader{br: bufio.NewReaderSize(r, 16<<10)}
}

// line returns the next line without its terminator (LF or CRLF); at the
// end of the stream, what is left and io.EOF.
func (s *SSEReader) line() ([]byte, error) {
	var out []byte
	for {
		frag, err := s.br.ReadSlice('\n')
		s.total += int64(len(frag))
		if s.total > MaxStreamBytes {
			return nil, errStream("too large")
		}
		if len(out)+len(frag) > MaxStreamLine+2 {
			return nil, errStream("line too long")
		}
		out = append(out, frag...)
		if err == nil {
			out = out[:len(out)-1]
			out = bytes.TrimSuffix(out, []byte{'\r'})
			return out, nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return out, io.EOF
		}
		return nil, err
	}
}

// Next returns the data of the next event: its data lines joined with
// "\n". It returns io.EOF when the stream ends between events, and
// refuses an event of a type other than "message".
func (s *SSEReader) Next() ([]byte, error) {
	typ, data, err := s.NextEvent()
	if err != nil {
		return nil, err
	}
	if typ != "message" {
		return nil, errStream("unexpected event type")
	}
	return data, nil
}

// NextEvent returns the type ("message" unless an event field names
// another, of at most 64 bytes) and the data of the next event. It returns
// io.EOF when the stream ends between events.
func (s *SSEReader) NextEvent() (string, []byte, error) {
	s.data = s.data[:0]
	typ := "message"
	has := false
	for {
		ln, err := s.line()
		if err != nil && !errors.Is(err, io.EOF) {
			return "", nil, err
		}
		if errors.Is(err, io.EOF) {
			if len(ln) > 0 || has {
				return "", nil, errStream("ended inside an event")
			}
			return "", nil, io.EOF
		}
		if len(ln) == 0 {
			if has {
				return typ, s.data, nil
			}
			typ = "message" // an event without data is not dispatched
			continue
		}
		if !utf8.Valid(ln) {
			return "", nil, errStream("invalid UTF-8")
		}
		if ln[0] == ':' {
			continue // comment (keep-alive)
		}
		name, value, ok := bytes.Cut(ln, []byte{':'})
		if !ok {
			return "", nil, errStream("line without a field")
		}
		value = bytes.TrimPrefix(value, []byte{' '})
		switch string(name) {
		case "data":
			if has {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, value...)
			has = true
		case "event":
			if len(value) == 0 || len(value) > 64 {
				return "", nil, errStream("bad event type")
			}
			typ = string(value)
		case "id", "retry":
		default:
			return "", nil, errStream("unknown field")
		}
	}
}

// streamUsage is the usage an upstream reports in a stream's last chunk.
type streamUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

type streamFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// StreamChunk is what the proxy reads of one chunk of a streamed chat
// completion (object chat.completion.chunk): the generated text of each
// choice and the usage, when reported.
type StreamChunk struct {
	Choices []struct {
		Index *int64 `json:"index"`
		Delta *struct {
			Content      *string         `json:"content"`
			Refusal      *string         `json:"refusal"`
			FunctionCall *streamFunction `json:"function_call"`
			ToolCalls    []struct {
				Function *streamFunction `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
	} `json:"choices"`
	Usage *streamUsage    `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// maxUsage bounds the token counts an upstream may report.
const maxUsage = MaxMaxTokens * MaxChoices * 64

// ParseStreamChunk decodes the data of one stream event for a request of
// choices choices, with the rules of [ParseChatRequest] (case-fold
// duplicates refused, so the client reads the same text the proxy
// counted), and returns the chunk and the completion tokens it carries,
// counted conservatively without a tokenizer: for each choice whose delta
// carries generated text (content, refusal, function name or arguments),
// one token per 4 bytes, rounded up, and at least one. A chunk carrying
// an error member, a choice index out of range or a usage out of range is
// refused. Errors are *contracts.Error with code UPSTREAM_5XX.
func ParseStreamChunk(data []byte, choices int64) (StreamChunk, int64, error) {
	var c StreamChunk
	if len(data) == 0 || data[0] != '{' {
		return c, 0, errStream("chunk is not an object")
	}
	if err := contracts.UnmarshalFields(data, &c); err != nil {
		return c, 0, errStream("malformed chunk")
	}
	if c.Error != nil {
		return c, 0, errStream("upstream reported an error")
	}
	if u := c.Usage; u != nil {
		if u.PromptTokens < 0 || u.CompletionTokens < 0 || u.TotalTokens < 0 ||
			u.PromptTokens > maxUsage || u.CompletionTokens > maxUsage || u.TotalTokens > 2*maxUsage {
			return c, 0, errStream("usage out of range")
		}
	}
	var tokens int64
	for _, ch := range c.Choices {
		if ch.Index == nil || *ch.Index < 0 || *ch.Index >= choices {
			return c, 0, errStream("choice index out of range")
		}
		if ch.Delta == nil {
			continue
		}
		var n int64
		if ch.Delta.Content != nil {
			n += int64(len(*ch.Delta.Content))
		}
		if ch.Delta.Refusal != nil {
			n += int64(len(*ch.Delta.Refusal))
		}
		if f := ch.Delta.FunctionCall; f != nil {
			n += int64(len(f.Name) + len(f.Arguments))
		}
		for _, tc := range ch.Delta.ToolCalls {
			if tc.Function != nil {
				n += int64(len(tc.Function.Name) + len(tc.Function.Arguments))
			}
		}
		if n > 0 {
			tokens += max(1, (n+3)/4)
		}
	}
	return c, tokens, nil
}
