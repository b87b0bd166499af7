package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
)

// FuzzParseChatRequest pins the proxy rule: for any body ParseChatRequest
// accepts, the model, max_tokens and n it decides on are those a
// case-sensitive, last-wins upstream reads in the same bytes (encoding/json
// into a map), and no second completion bound is accepted. Refusals are
// typed.
func FuzzParseChatRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-cheap","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"gpt-expensive","MODEL":"gpt-cheap","max_tokens":1}`,
		`{"model":"m","max_tokens":128000,"Max_Tokens":1}`,
		`{"model":"m","n":3,"max_tokens":10}`, `{"Model":"m"}`, `{"model":"m","max_completion_tokens":5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, maxTokens, choices, err := ParseChatRequest(body)
		if err != nil {
			if contracts.CodeOf(err) == contracts.CodeInternal {
				t.Fatalf("untyped refusal %v", err)
			}
			return
		}
		var upstream map[string]any
		if err := json.Unmarshal(body, &upstream); err != nil {
			t.Fatalf("accepted a body the upstream cannot read: %q", body)
		}
		if upstream["model"] != req.Model {
			t.Fatalf("%q: decided on model %q, upstream reads %v", body, req.Model, upstream["model"])
		}
		if v, ok := upstream["max_tokens"]; ok && v != nil && int64(v.(float64)) != maxTokens {
			t.Fatalf("%q: budgeted max_tokens %d, upstream reads %v", body, maxTokens, v)
		}
		if v, ok := upstream["n"]; ok && v != nil && int64(v.(float64)) != choices {
			t.Fatalf("%q: budgeted n %d, upstream reads %v", body, choices, v)
		}
		if _, ok := upstream["max_completion_tokens"]; ok {
			t.Fatalf("%q: accepted a second completion bound", body)
		}
		if maxTokens < 1 || maxTokens > MaxMaxTokens || choices < 1 || choices > MaxChoices {
			t.Fatalf("%q: bounds out of range: %d × %d", body, choices, maxTokens)
		}
	})
}

// FuzzSSEReader pins the stream reader's rules: on any upstream bytes it
// ends with io.EOF or a typed UPSTREAM_5XX error, never panics, and every
// chunk ParseStreamChunk accepts is a JSON object counted at zero or more
// tokens, at least one per 4 bytes of generated text.
func FuzzSSEReader(f *testing.F) {
	for _, s := range []string{
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n",
		": ping\r\n\r\nevent: message\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\n",
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n",
		"data: {\"choices\":[{\"index\":1}]}\n\n", "event: error\ndata: x\n\n", "data: {\"x\":1", "nofield\n\n",
		"data: {\"choices\":[],\"CHOICES\":[]}\n\n", "id: 1\nretry: 5\ndata: a\ndata: b\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		rd := NewSSEReader(bytes.NewReader(raw))
		for range 1000 {
			data, err := rd.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && contracts.CodeOf(err) != contracts.CodeUpstream5xx {
					t.Fatalf("untyped stream error %v", err)
				}
				return
			}
			if string(data) == "[DONE]" {
				continue
			}
			c, n, err := ParseStreamChunk(data, 2)
			if err != nil {
				if contracts.CodeOf(err) != contracts.CodeUpstream5xx {
					t.Fatalf("untyped chunk error %v", err)
				}
				continue
			}
			if !json.Valid(data) || data[0] != '{' || n < 0 {
				t.Fatalf("accepted %q as %d tokens", data, n)
			}
			var text int64
			for _, ch := range c.Choices {
				if ch.Delta != nil && ch.Delta.Content != nil {
					text += int64(len(*ch.Delta.Content))
				}
			}
			if n < (text+3)/4 {
				t.Fatalf("%q: counted %d tokens for %d bytes of text", data, n, text)
			}
		}
	})
}

// FuzzParseModelList: an upstream's model list is accepted only as sorted,
// distinct, well-formed names; refusals are typed.
func FuzzParseModelList(f *testing.F) {
	for _, s := range []string{`{"object":"list","data":[{"id":"b"},{"id":"a"},{"id":"a"}]}`, `{"data":null}`,
		`{"data":[{"id":""}]}`, `{"data":[],"DATA":[]}`, `[]`, `{"data":[{"id":"a\u0000b"}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ids, err := ParseModelList(raw)
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeUpstream5xx {
				t.Fatalf("untyped refusal %v", err)
			}
			return
		}
		for i, id := range ids {
			if checkModelName(id) != nil || (i > 0 && ids[i-1] >= id) {
				t.Fatalf("%q: accepted %q", raw, ids)
			}
		}
	})
}

// FuzzAnthropic pins the Anthropic translation: on any upstream bytes the
// stream source and FromAnthropic end with typed UPSTREAM_5XX errors or
// produce chat completion chunks and answers that are valid JSON; a
// request ToAnthropic accepts keeps the reserved max_tokens.
func FuzzAnthropic(f *testing.F) {
	f.Add([]byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":3}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))
	f.Add([]byte(`{"type":"message","content":[{"type":"text","text":"x"}],"usage":{"input_tokens":1,"output_tokens":2}}`))
	f.Add([]byte(`{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"x"}]}],"stop":["a"]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		src := &anthropicSource{rd: NewSSEReader(bytes.NewReader(raw)), model: "m"}
		for range 1000 {
			chunk, n, _, err := src.next()
			if err != nil {
				if !errors.Is(err, errDone) && contracts.CodeOf(err) != contracts.CodeUpstream5xx {
					t.Fatalf("untyped stream error %v", err)
				}
				break
			}
			if n < 0 || (chunk != nil && !json.Valid(chunk)) {
				t.Fatalf("bad chunk %q (%d tokens)", chunk, n)
			}
		}
		if out, p, c, _, err := FromAnthropic(raw, "m", time.Unix(0, 0)); err != nil {
			if contracts.CodeOf(err) != contracts.CodeUpstream5xx {
				t.Fatalf("untyped answer error %v", err)
			}
		} else if !json.Valid(out) || p < 0 || c < 0 {
			t.Fatalf("bad answer %q", out)
		}
		if _, mt, ch, err := ParseChatRequest(raw); err == nil {
			b, err := ToAnthropic(raw, mt, ch)
			if err != nil {
				if contracts.CodeOf(err) != contracts.CodeInvalidInput {
					t.Fatalf("untyped translation error %v", err)
				}
				return
			}
			var req anRequest
			if json.Unmarshal(b, &req) != nil || req.MaxTokens != mt {
				t.Fatalf("translated %q to %q", raw, b)
			}
		}
	})
}
