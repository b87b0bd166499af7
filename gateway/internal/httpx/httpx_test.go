package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
)

type body struct {
	Name  string            `json:"name"`
	Count int64             `json:"count,omitempty"`
	Tags  map[string]string `json:"tags,omitempty"`
}

func decode(t *testing.T, raw string) (body, error) {
	t.Helper()
	r := httptest.NewRequest("POST", "/", strings.NewReader(raw))
	var b body
	err := DecodeJSON(httptest.NewRecorder(), r, &b)
	if err == nil {
		// The bytes stay readable for the handler.
		again, _ := io.ReadAll(r.Body)
		if string(again) != raw {
			t.Fatalf("body after decode: %q", again)
		}
	}
	return b, err
}

func TestDecodeJSON(t *testing.T) {
	b, err := decode(t, `{"name":"a","count":3,"tags":{"x":"y"}}`)
	if err != nil || b.Name != "a" || b.Count != 3 || b.Tags["x"] != "y" {
		t.Fatalf("valid body: %+v %v", b, err)
	}
	bad := map[string]string{
		"duplicate key":        `{"name":"a","name":"b"}`,
		"unknown field":        `{"name":"a","other":1}`,
		"mis-cased field":      `{"Name":"a"}`,
		"case-folded map keys": `{"name":"a","tags":{"k":"1","K":"2"}}`,
		"null":                 `{"name":null}`,
		"float":                `{"name":"a","count":1.5}`,
		"trailing data":        `{"name":"a"} {}`,
		"bad utf-8":            "{\"name\":\"\xff\"}",
		"not json":             `name=a`,
		"too large":            `{"name":"` + strings.Repeat("a", MaxBody) + `"}`,
	}
	for name, raw := range bad {
		_, err := decode(t, raw)
		var ce *contracts.Error
		if !errors.As(err, &ce) || ce.Code != contracts.CodeInvalidInput {
			t.Errorf("%s: %v, want TALOS_INVALID_INPUT", name, err)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	w := httptest.NewRecorder()
	WriteJSON(w, http.StatusCreated, map[string]int{"n": 1})
	if w.Code != http.StatusCreated || w.Header().Get("Content-Type") != "application/json" ||
		w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Body.String() != "{\"n\":1}\n" {
		t.Fatalf("response %d %v %q", w.Code, w.Header(), w.Body.String())
	}
	w = httptest.NewRecorder()
	WriteJSON(w, http.StatusOK, math.NaN())
	var eb struct{ Code string }
	if w.Code != http.StatusInternalServerError || json.Unmarshal(w.Body.Bytes(), &eb) != nil || eb.Code != "INTERNAL" {
		t.Fatalf("unencodable value: %d %q", w.Code, w.Body.String())
	}
}

func TestReadFileLimited(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), 10), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFileLimited(path, 10); err != nil || len(b) != 10 {
		t.Fatalf("at the limit: %d %v", len(b), err)
	}
	if _, err := ReadFileLimited(path, 9); err == nil {
		t.Fatal("a file over the limit was read")
	}
	if _, err := ReadFileLimited(filepath.Join(t.TempDir(), "missing"), 9); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestExtendWriteDeadline(t *testing.T) {
	// A recorder cannot set deadlines; the call must be harmless.
	w := httptest.NewRecorder()
	ExtendWriteDeadline(w, 0)
	WriteJSON(w, http.StatusOK, true)
	if w.Code != http.StatusOK {
		t.Fatal(w.Code)
	}
}
