package llm

import (
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/talosgo/talos/contracts"
)

// anthropicFields are the chat completion members a request routed to a
// KindAnthropic upstream may carry; any other is refused rather than
// dropped (a dropped tools or response_format would change what the
// caller asked for).
var anthropicFields = map[string]bool{
	"model": true, "messages": true, "max_tokens": true, "temperature": true, "top_p": true,
	"stop": true, "stream": true, "stream_options": true, "n": true, "user": true,
}

type oaPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type oaMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type oaRequest struct {
	Model       string          `json:"model"`
	Messages    []oaMessage     `json:"messages"`
	Temperature json.RawMessage `json:"temperature"`
	TopP        json.RawMessage `json:"top_p"`
	Stop        json.RawMessage `json:"stop"`
	Stream      bool            `json:"stream"`
}

type anBlock struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type anMessage struct {
	Role    string    `json:"role"`
	Content []anBlock `json:"content"`
}

type anRequest struct {
	Model         string          `json:"model"`
	MaxTokens     int64           `json:"max_tokens"`
	System        string          `json:"system,omitempty"`
	Messages      []anMessage     `json:"messages"`
	Temperature   json.RawMessage `json:"temperature,omitempty"`
	TopP          json.RawMessage `json:"top_p,omitempty"`
	StopSequences []string        `json:"stop_sequences,omitempty"`
	Stream        bool            `json:"stream,omitempty"`
}

func unsupported(what string) error {
	return contracts.New(contracts.CodeInvalidInput, what+" is not supported by this model's upstream")
}

// ToAnthropic translates a checked chat completion request (body, already
// accepted by [ParseChatRequest], with its completion bound maxTokens and
// choices) into an Anthropic messages request: system and developer
// messages become the system prompt, user and assistant messages text
// blocks, stop the stop sequences, and max_tokens the bound the proxy
// reserved. Members other than model, messages, max_tokens, temperature,
// top_p, stop, stream, stream_options, n and user, n > 1, other roles and
// content parts that are not text are refused (TALOS_INVALID_INPUT).
func ToAnthropic(body []byte, maxTokens, choices int64) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "request body is not a JSON object")
	}
	for k := range top {
		if !anthropicFields[k] {
			return nil, unsupported("member " + strconv.Quote(k))
		}
	}
	if choices != 1 {
		return nil, unsupported("n > 1")
	}
	var req oaRequest
	if err := contracts.UnmarshalFields(body, &req); err != nil {
		return nil, err
	}
	out := anRequest{Model: req.Model, MaxTokens: maxTokens, Stream: req.Stream, Messages: []anMessage{}}
	if isSet(req.Temperature) {
		out.Temperature = req.Temperature
	}
	if isSet(req.TopP) {
		out.TopP = req.TopP
	}
	if isSet(req.Stop) {
		var one string
		if json.Unmarshal(req.Stop, &one) == nil {
			out.StopSequences = []string{one}
		} else if json.Unmarshal(req.Stop, &out.StopSequences) != nil || len(out.StopSequences) > 4 {
			return nil, contracts.New(contracts.CodeInvalidInput, "stop must be a string or up to 4 strings")
		}
	}
	var system []string
	for _, m := range req.Messages {
		blocks, err := textBlocks(m.Content)
		if err != nil {
			return nil, err
		}
		switch m.Role {
		case "system", "developer":
			for _, b := range blocks {
				system = append(system, b.Text)
			}
		case "user", "assistant":
			out.Messages = append(out.Messages, anMessage{Role: m.Role, Content: blocks})
		default:
			return nil, unsupported("role " + strconv.Quote(m.Role))
		}
	}
	if len(out.Messages) == 0 {
		return nil, contracts.New(contracts.CodeInvalidInput, "messages must hold a user or assistant message")
	}
	out.System = strings.Join(system, "\n\n")
	b, err := json.Marshal(out)
	if err != nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "request cannot be translated")
	}
	return b, nil
}

func isSet(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// textBlocks returns a message content (a string or an array of text
// parts) as text blocks.
func textBlocks(raw json.RawMessage) ([]anBlock, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []anBlock{{Type: "text", Text: s}}, nil
	}
	var parts []oaPart
	if json.Unmarshal(raw, &parts) != nil || len(parts) == 0 {
		return nil, contracts.New(contracts.CodeInvalidInput, "message content must be a string or text parts")
	}
	out := make([]anBlock, 0, len(parts))
	for _, p := range parts {
		if p.Type != "text" {
			return nil, unsupported("content part " + strconv.Quote(p.Type))
		}
		out = append(out, anBlock{Type: "text", Text: p.Text})
	}
	return out, nil
}

type anUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

func (u *anUsage) ok() bool {
	for _, v := range []int64{u.InputTokens, u.OutputTokens, u.CacheCreationInputTokens, u.CacheReadInputTokens} {
		if v < 0 || v > maxUsage {
			return false
		}
	}
	return true
}

func (u *anUsage) prompt() int64 {
	return u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
}

type anResponse struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Content    []anBlock `json:"content"`
	StopReason *string   `json:"stop_reason"`
	Usage      *anUsage  `json:"usage"`
}

// finishReason maps an Anthropic stop reason to OpenAI's finish_reason.
func finishReason(r *string) string {
	if r != nil && *r == "max_tokens" {
		return "length"
	}
	return "stop"
}

type oaChoiceMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type oaChoice struct {
	Index        int             `json:"index"`
	Message      oaChoiceMessage `json:"message"`
	FinishReason string          `json:"finish_reason"`
}

type oaUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

type oaResponse struct {
	ID      string     `json:"id"`
	Object  string     `json:"object"`
	Created int64      `json:"created"`
	Model   string     `json:"model"`
	Choices []oaChoice `json:"choices"`
	Usage   *oaUsage   `json:"usage,omitempty"`
}

// FromAnthropic translates an Anthropic messages answer into a chat
// completion for model, and returns the prompt and completion tokens it
// reports (ok false when it reports none). A malformed answer is refused
// with UPSTREAM_5XX.
func FromAnthropic(raw []byte, model string, now time.Time) (out []byte, prompt, completion int64, ok bool, err error) {
	var r anResponse
	if len(raw) == 0 || raw[0] != '{' || contracts.UnmarshalFields(raw, &r) != nil || r.Type != "message" {
		return nil, 0, 0, false, contracts.New(contracts.CodeUpstream5xx, "upstream answer is malformed")
	}
	var text strings.Builder
	for _, b := range r.Content {
		if b.Type == "text" {
			text.WriteString(b.Text)
		}
	}
	resp := oaResponse{ID: r.ID, Object: "chat.completion", Created: now.Unix(), Model: model,
		Choices: []oaChoice{{Message: oaChoiceMessage{Role: "assistant", Content: text.String()}, FinishReason: finishReason(r.StopReason)}}}
	if r.Usage != nil {
		if !r.Usage.ok() {
			return nil, 0, 0, false, contracts.New(contracts.CodeUpstream5xx, "upstream usage out of range")
		}
		prompt, completion, ok = r.Usage.prompt(), r.Usage.OutputTokens, true
		resp.Usage = &oaUsage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return nil, 0, 0, false, contracts.New(contracts.CodeInternal, "answer cannot be encoded")
	}
	return b, prompt, completion, ok, nil
}

// anEvent is what the proxy reads of one event of an Anthropic stream.
type anEvent struct {
	Type    string `json:"type"`
	Message *struct {
		ID    string   `json:"id"`
		Usage *anUsage `json:"usage"`
	} `json:"message"`
	Delta *struct {
		Type        string  `json:"type"`
		Text        string  `json:"text"`
		PartialJSON string  `json:"partial_json"`
		Thinking    string  `json:"thinking"`
		StopReason  *string `json:"stop_reason"`
	} `json:"delta"`
	Usage *anUsage `json:"usage"`
}

// anthropicSource translates an Anthropic event stream into chat
// completion chunks.
type anthropicSource struct {
	rd      *SSEReader
	model   string
	created int64
	id      string
	started bool
	stopped bool
	prompt  int64
	output  int64
	seen    bool // usage was reported
}

type oaDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type oaChunkChoice struct {
	Index        int     `json:"index"`
	Delta        oaDelta `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

type oaChunk struct {
	ID      string          `json:"id"`
	Object  string          `json:"object"`
	Created int64           `json:"created"`
	Model   string          `json:"model"`
	Choices []oaChunkChoice `json:"choices"`
	Usage   *oaUsage        `json:"usage,omitempty"`
}

func (s *anthropicSource) chunk(choices []oaChunkChoice, usage *oaUsage) []byte {
	if choices == nil {
		choices = []oaChunkChoice{}
	}
	b, _ := json.Marshal(oaChunk{ID: s.id, Object: "chat.completion.chunk", Created: s.created, Model: s.model, Choices: choices, Usage: usage})
	return b
}

func (s *anthropicSource) usage() *streamUsage {
	if !s.seen {
		return nil
	}
	return &streamUsage{PromptTokens: s.prompt, CompletionTokens: s.output, TotalTokens: s.prompt + s.output}
}

func (s *anthropicSource) next() ([]byte, int64, bool, error) {
	for {
		if s.stopped {
			return nil, 0, false, errDone
		}
		typ, data, err := s.rd.NextEvent()
		if errors.Is(err, io.EOF) {
			return nil, 0, false, errStream("ended before message_stop")
		}
		if err != nil {
			return nil, 0, false, err
		}
		var e anEvent
		if len(data) == 0 || data[0] != '{' || contracts.UnmarshalFields(data, &e) != nil || (typ != "message" && typ != e.Type) {
			return nil, 0, false, errStream("malformed event")
		}
		for _, u := range []*anUsage{e.Usage, func() *anUsage {
			if e.Message != nil {
				return e.Message.Usage
			}
			return nil
		}()} {
			if u != nil && !u.ok() {
				return nil, 0, false, errStream("usage out of range")
			}
		}
		switch e.Type {
		case "message_start":
			if s.started || e.Message == nil {
				return nil, 0, false, errStream("unexpected message_start")
			}
			s.started, s.id = true, e.Message.ID
			if u := e.Message.Usage; u != nil {
				s.prompt, s.output, s.seen = u.prompt(), u.OutputTokens, true
			}
			return s.chunk([]oaChunkChoice{{Delta: oaDelta{Role: "assistant"}}}, nil), 0, false, nil
		case "content_block_delta":
			if !s.started || e.Delta == nil {
				return nil, 0, false, errStream("unexpected content_block_delta")
			}
			n := int64(len(e.Delta.Text) + len(e.Delta.PartialJSON) + len(e.Delta.Thinking))
			var tokens int64
			if n > 0 {
				tokens = max(1, (n+3)/4)
			}
			if e.Delta.Type != "text_delta" {
				return nil, tokens, false, nil // counted, not passed on
			}
			text := e.Delta.Text
			return s.chunk([]oaChunkChoice{{Delta: oaDelta{Content: &text}}}, nil), tokens, false, nil
		case "message_delta":
			if !s.started {
				return nil, 0, false, errStream("unexpected message_delta")
			}
			if e.Usage != nil {
				s.output, s.seen = max(s.output, e.Usage.OutputTokens), true
				if p := e.Usage.prompt(); p > s.prompt {
					s.prompt = p
				}
			}
			if e.Delta != nil && e.Delta.StopReason != nil {
				fr := finishReason(e.Delta.StopReason)
				return s.chunk([]oaChunkChoice{{FinishReason: &fr}}, nil), 0, false, nil
			}
		case "message_stop":
			if !s.started {
				return nil, 0, false, errStream("unexpected message_stop")
			}
			s.stopped = true
			if u := s.usage(); u != nil {
				return s.chunk(nil, &oaUsage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}), 0, true, nil
			}
		case "error":
			return nil, 0, false, errStream("upstream reported an error")
		default:
			// ping, content_block_start, content_block_stop and event
			// types added later carry nothing to pass on.
		}
	}
}
