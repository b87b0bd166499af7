package contracts_test

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gowebpki/jcs"
	"github.com/talosgo/talos/contracts"
)

// enc adapts the append-style encoder to a buffer-holding one, so the
// table tests read as a sequence of writes.
type enc struct {
	contracts.CanonicalEncoder
	b []byte
}

func (x *enc) BeginObject()           { x.b = x.CanonicalEncoder.BeginObject(x.b) }
func (x *enc) BeginArray()            { x.b = x.CanonicalEncoder.BeginArray(x.b) }
func (x *enc) EndObject()             { x.b = x.CanonicalEncoder.EndObject(x.b) }
func (x *enc) EndArray()              { x.b = x.CanonicalEncoder.EndArray(x.b) }
func (x *enc) Key(k string)           { x.b = x.CanonicalEncoder.Key(x.b, k) }
func (x *enc) String(s string)        { x.b = x.CanonicalEncoder.String(x.b, s) }
func (x *enc) Int(n int64)            { x.b = x.CanonicalEncoder.Int(x.b, n) }
func (x *enc) Uint(n uint64)          { x.b = x.CanonicalEncoder.Uint(x.b, n) }
func (x *enc) Float(f float64)        { x.b = x.CanonicalEncoder.Float(x.b, f) }
func (x *enc) Number(l string)        { x.b = x.CanonicalEncoder.Number(x.b, l) }
func (x *enc) Bool(v bool)            { x.b = x.CanonicalEncoder.Bool(x.b, v) }
func (x *enc) Null()                  { x.b = x.CanonicalEncoder.Null(x.b) }
func (x *enc) Bytes() ([]byte, error) { return x.Finish(x.b) }
func (x *enc) Reset(dst []byte)       { x.CanonicalEncoder.Reset(); x.b = dst }

// encodeAny writes a decoded JSON value (json.Unmarshal with UseNumber, or
// a Go tree of the same types plus float64 and int64) with the typed
// encoder, keys sorted by SortKeysUTF16.
func encodeAny(e *enc, v any) {
	switch x := v.(type) {
	case nil:
		e.Null()
	case bool:
		e.Bool(x)
	case string:
		e.String(x)
	case json.Number:
		e.Number(string(x))
	case float64:
		e.Float(x)
	case int64:
		e.Int(x)
	case []any:
		e.BeginArray()
		for _, el := range x {
			encodeAny(e, el)
		}
		e.EndArray()
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		contracts.SortKeysUTF16(keys)
		e.BeginObject()
		for _, k := range keys {
			e.Key(k)
			encodeAny(e, x[k])
		}
		e.EndObject()
	default:
		panic("unexpected type")
	}
}

func encode(v any, strict bool) ([]byte, error) {
	var e enc
	e.Strict = strict
	encodeAny(&e, v)
	return e.Bytes()
}

// FuzzCanonicalEncoderText: for JSON text that Canonicalize accepts, the
// typed encoder writing the decoded value produces the same bytes (and so
// jcs.Transform's); in strict mode likewise with CanonicalizeStrict.
func FuzzCanonicalEncoderText(f *testing.F) {
	for _, s := range goldenInputs(f, "canonical_json", "json", "json_hex") {
		f.Add(s)
	}
	f.Add([]byte(`{"b":[1,2.5,-0,1e2,"\u00e9\ud83d\ude00"],"a":{"\u20ac":1,"\ud83d\ude00":2,"\uffff":3,"z":null},"c":"\u0001\"\\\/\t"}`))
	f.Add([]byte(`{"\ue000":1,"\ud800\udc00":2,"\ud7ff":3}`))
	f.Add([]byte(`[1.5e-300, 0.000001, 1e-7, 123456789012345, -9007199254740991]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		want, err := contracts.Canonicalize(data)
		if err != nil {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("encoding/json rejects what Canonicalize accepted: %q: %v", data, err)
		}
		got, err := encode(v, false)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("encoder: %q, %v\nCanonicalize: %q\ninput %q", got, err, want, data)
		}
		wantStrict, serr := contracts.CanonicalizeStrict(data)
		gotStrict, gerr := encode(v, true)
		if (serr == nil) != (gerr == nil) || serr == nil && !bytes.Equal(gotStrict, wantStrict) {
			t.Fatalf("strict encoder: %q, %v\nCanonicalizeStrict: %q, %v\ninput %q", gotStrict, gerr, wantStrict, serr, data)
		}
	})
}

// valueFrom builds a JSON value tree from fuzz bytes: any Go strings
// (including invalid UTF-8, controls, non-ASCII, supplementary-plane
// characters), float64 and int64 of any value, nesting.
func valueFrom(data []byte, depth int) (any, []byte) {
	if len(data) == 0 {
		return nil, data
	}
	c, data := data[0], data[1:]
	take := func(n int) []byte {
		n = min(n, len(data))
		b := data[:n]
		data = data[n:]
		return b
	}
	switch c % 8 {
	case 0:
		return nil, data
	case 1:
		return c&0x80 != 0, data
	case 2:
		return string(take(int(c >> 3))), data
	case 3:
		b := take(8)
		var u uint64
		for _, x := range b {
			u = u<<8 | uint64(x)
		}
		return math.Float64frombits(u), data
	case 4:
		b := take(8)
		var u uint64
		for _, x := range b {
			u = u<<8 | uint64(x)
		}
		return int64(u) >> (c >> 3 % 16 * 4), data
	case 5, 6:
		if depth > 6 {
			return string(take(3)), data
		}
		n := int(c>>3) % 6
		if c%8 == 5 {
			arr := []any{}
			for range n {
				var el any
				el, data = valueFrom(data, depth+1)
				arr = append(arr, el)
			}
			return arr, data
		}
		obj := map[string]any{}
		for range n {
			n := 0
			if l := take(1); len(l) == 1 {
				n = int(l[0]) % 6
			}
			k := string(take(n))
			var el any
			el, data = valueFrom(data, depth+1)
			obj[k] = el
		}
		return obj, data
	default:
		return float64(int32(c)<<16) / 1024, data
	}
}

// FuzzCanonicalEncoderValue: for any Go value the typed encoder accepts,
// its bytes equal jcs.Transform of encoding/json's text of the value; it
// refuses only values Canonicalize would refuse (invalid UTF-8, unsafe
// integers, non-finite numbers), with TALOS_INVALID_INPUT.
func FuzzCanonicalEncoderValue(f *testing.F) {
	f.Add([]byte{6 | 3<<3, 1, 'b', 2 | 2<<3, 'x', '"', 1, 'a', 3, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18, 2, 'c', 2 | 4<<3, 0xf0, 0x9f, 0x98, 0x80})
	f.Add([]byte{6 | 4<<3, 3, 0xee, 0x80, 0x80, 1, 4, 0xf0, 0x90, 0x80, 0x80, 1, 1, 'z', 4, 0, 0, 0, 0, 0, 0, 0, 7, 2, 'A', 0})
	f.Add([]byte{5 | 3<<3, 2 | 3<<3, 0x01, 0x1f, 0x7f, 3, 0x3e, 0xb0, 0xc6, 0xf7, 0xa0, 0xb5, 0xed, 0x8d, 4 | 15<<3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		v, _ := valueFrom(data, 0)
		got, err := encode(v, false)
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Fatalf("error %v has code %s", err, contracts.CodeOf(err))
			}
			if !refusable(v) {
				t.Fatalf("encoder refused %#v: %v", v, err)
			}
			return
		}
		text, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		want, err := jcs.Transform(text)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("encoder %q\njcs       %q, %v\nvalue %#v", got, want, err, v)
		}
		if again, err := contracts.Canonicalize(got); err != nil || !bytes.Equal(again, got) {
			t.Fatalf("encoder output is not a fixed point of Canonicalize: %q → %q, %v", got, again, err)
		}
	})
}

// refusable reports whether v holds something canonical JSON has no form
// for.
func refusable(v any) bool {
	switch x := v.(type) {
	case string:
		return !utf8.ValidString(x)
	case float64:
		return math.IsNaN(x) || math.IsInf(x, 0) || x == math.Trunc(x) && math.Abs(x) > contracts.MaxSafeInteger
	case int64:
		return x > contracts.MaxSafeInteger || x < -contracts.MaxSafeInteger
	case []any:
		for _, el := range x {
			if refusable(el) {
				return true
			}
		}
	case map[string]any:
		for k, el := range x {
			if !utf8.ValidString(k) || refusable(el) {
				return true
			}
		}
	}
	return false
}

func TestCanonicalEncoderKeyOrder(t *testing.T) {
	// RFC 8785 §3.2.3 orders by UTF-16 code units: U+10000 (a surrogate
	// pair, 0xD800 0xDC00) sorts before U+E000 but after U+D7FF, unlike
	// in UTF-8 byte order or code point order.
	keys := []string{"\ue000", "\U00010000", "\ud7ff", "b", "a", "ab", "", "\u20ac", "\U0001F600"}
	contracts.SortKeysUTF16(keys)
	want := []string{"", "a", "ab", "b", "\u20ac", "\ud7ff", "\U00010000", "\U0001F600", "\ue000"}
	if strings.Join(keys, "|") != strings.Join(want, "|") {
		t.Fatalf("SortKeysUTF16 = %q, want %q", keys, want)
	}
	var e enc
	e.BeginObject()
	for i, k := range want {
		e.Key(k)
		e.Int(int64(i))
	}
	e.EndObject()
	got, err := e.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte(`{"\ue000":8,"\ud800\udc00":6,"\ud7ff":5,"b":3,"a":1,"ab":2,"":0,"\u20ac":4,"\ud83d\ude00":7}`)
	ref, err := jcs.Transform(raw)
	if err != nil || !bytes.Equal(got, ref) {
		t.Fatalf("encoder %q, jcs %q, %v", got, ref, err)
	}

	for _, tc := range []struct{ name, a, b string }{
		{"out of order", "b", "a"},
		{"repeated", "a", "a"},
		{"code point order is not UTF-16 order", "\U00010000", "\ue000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e enc
			e.BeginObject()
			e.Key(tc.a)
			e.Int(1)
			e.Key(tc.b)
			e.Int(2)
			e.EndObject()
			if tc.name == "code point order is not UTF-16 order" {
				// U+10000 then U+E000 *is* UTF-16 order: accepted.
				if _, err := e.Bytes(); err != nil {
					t.Fatal(err)
				}
				return
			}
			if b, err := e.Bytes(); contracts.CodeOf(err) != contracts.CodeInvalidInput || len(b) != 0 {
				t.Fatalf("got %q, %v; want TALOS_INVALID_INPUT and nothing appended", b, err)
			}
		})
	}
}

func TestCanonicalEncoderRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		strict bool
		write  func(e *enc)
	}{
		{"invalid UTF-8", false, func(e *enc) { e.String("a\xffb") }},
		{"encoded surrogate", false, func(e *enc) { e.String("\xed\xa0\x80") }},
		{"invalid UTF-8 key", false, func(e *enc) { e.BeginObject(); e.Key("\xc0"); e.Int(1); e.EndObject() }},
		{"unsafe int", false, func(e *enc) { e.Int(1 << 53) }},
		{"unsafe negative int", false, func(e *enc) { e.Int(-(1 << 53)) }},
		{"unsafe uint", false, func(e *enc) { e.Uint(1 << 60) }},
		{"unsafe float", false, func(e *enc) { e.Float(1e16) }},
		{"NaN", false, func(e *enc) { e.Float(math.NaN()) }},
		{"infinity", false, func(e *enc) { e.Float(math.Inf(-1)) }},
		{"unsafe number literal", false, func(e *enc) { e.Number("9007199254740992") }},
		{"unsafe number in exponent form", false, func(e *enc) { e.Number("1e16") }},
		{"number out of range", false, func(e *enc) { e.Number("1e400") }},
		{"malformed number", false, func(e *enc) { e.Number("01") }},
		{"not a number", false, func(e *enc) { e.Number("NaN") }},
		{"strict null", true, func(e *enc) { e.Null() }},
		{"strict fraction", true, func(e *enc) { e.Float(1.5) }},
		{"strict number literal", true, func(e *enc) { e.Number("1.0") }},
		{"value without key", false, func(e *enc) { e.BeginObject(); e.Int(1); e.EndObject() }},
		{"key without value", false, func(e *enc) { e.BeginObject(); e.Key("a"); e.EndObject() }},
		{"key in array", false, func(e *enc) { e.BeginArray(); e.Key("a"); e.EndArray() }},
		{"mismatched end", false, func(e *enc) { e.BeginArray(); e.EndObject() }},
		{"unopened end", false, func(e *enc) { e.EndArray() }},
		{"two values", false, func(e *enc) { e.Int(1); e.Int(2) }},
		{"nothing", false, func(e *enc) {}},
		{"left open", false, func(e *enc) { e.BeginArray() }},
		{"too deep", false, func(e *enc) {
			for range contracts.MaxJSONDepth + 1 {
				e.BeginArray()
			}
		}},
		{"too large", false, func(e *enc) {
			e.BeginArray()
			s := strings.Repeat("x", 1<<16)
			for range 17 {
				e.String(s)
			}
			e.EndArray()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e enc
			e.Strict = tc.strict
			e.Reset([]byte("prefix"))
			tc.write(&e)
			b, err := e.Bytes()
			if contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Fatalf("err = %v, want TALOS_INVALID_INPUT", err)
			}
			if string(b) != "prefix" {
				t.Fatalf("buffer %q after an error, want the prefix only", b)
			}
		})
	}
}

func TestCanonicalEncoderForms(t *testing.T) {
	// Each value with the text Canonicalize makes of the same JSON.
	for _, tc := range []struct {
		write func(e *enc)
		json  string
	}{
		{func(e *enc) { e.String("\"\\/\b\f\n\r\t\x00\x1f\x7f\u2028é😀<>&") }, `"\"\\/\b\f\n\r\t\u0000\u001f\u007f\u2028\u00e9\ud83d\ude00<>&"`},
		{func(e *enc) { e.Float(math.Copysign(0, -1)) }, `-0.0`},
		{func(e *enc) { e.Float(1.0) }, `1.0`},
		{func(e *enc) { e.Float(1e21 / 1e6) }, `1e15`},
		{func(e *enc) { x := 0.1; e.Float(x + 0.2) }, `0.30000000000000004`},
		{func(e *enc) { e.Float(1e-7) }, `1e-7`},
		{func(e *enc) { e.Float(5e-324) }, `5e-324`},
		{func(e *enc) { e.Float(1.5e-300) }, `1.5e-300`},
		{func(e *enc) { e.Number("-0") }, `-0`},
		{func(e *enc) { e.Number("1.50E+2") }, `1.50E+2`},
		{func(e *enc) { e.Number("-9007199254740991") }, `-9007199254740991`},
		{func(e *enc) { e.Uint(contracts.MaxSafeInteger) }, strconv.Itoa(contracts.MaxSafeInteger)},
		{func(e *enc) {
			e.BeginObject()
			e.Key("a")
			e.BeginArray()
			e.BeginObject()
			e.EndObject()
			e.BeginArray()
			e.EndArray()
			e.Null()
			e.Bool(true)
			e.Bool(false)
			e.EndArray()
			e.Key("b")
			e.BeginObject()
			e.Key("c")
			e.Int(-1)
			e.EndObject()
			e.EndObject()
		}, `{"b":{"c":-1},"a":[{},[],null,true,false]}`},
	} {
		var e enc
		tc.write(&e)
		got, err := e.Bytes()
		want, werr := contracts.Canonicalize([]byte(tc.json))
		if err != nil || werr != nil || !bytes.Equal(got, want) {
			t.Errorf("encoder %q, %v; Canonicalize(%s) = %q, %v", got, err, tc.json, want, werr)
		}
	}
	// Reset reuses the encoder after an error; Strict survives it.
	var e enc
	e.Strict = true
	e.Null()
	e.Reset(nil)
	e.Int(7)
	if b, err := e.Bytes(); err != nil || string(b) != "7" || !e.Strict {
		t.Fatalf("after Reset: %q, %v, strict %v", b, err, e.Strict)
	}
	if b, err := contracts.AppendCanonicalString([]byte("x"), "\xff"); err == nil || string(b) != "x" {
		t.Fatalf("AppendCanonicalString of invalid UTF-8: %q, %v", b, err)
	}
	if b, err := contracts.AppendCanonicalFloat(nil, 2.5); err != nil || string(b) != "2.5" {
		t.Fatalf("AppendCanonicalFloat(2.5) = %q, %v", b, err)
	}
}

func TestCanonicalEncoderName(t *testing.T) {
	if _, err := contracts.NewName("a\xff"); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("NewName of invalid UTF-8: %v", err)
	}
	esc := contracts.MustName("a\"\n")
	if esc.String() != "a\"\n" {
		t.Fatalf("String() = %q", esc.String())
	}
	var e contracts.CanonicalEncoder
	b := e.BeginObject(nil)
	b = e.Name(b, contracts.Name{}) // the zero Name is ""
	b = e.Int(b, 0)
	b = e.Name(b, esc)
	b = e.Int(b, 1)
	b = e.Key(b, "a\"\x7f") // after `a"\n` (0x0a < 0x7f)
	b = e.Int(b, 2)
	b = e.Name(b, contracts.MustName("b"))
	b = e.Int(b, 3)
	b = e.EndObject(b)
	got, err := e.Finish(b)
	want, werr := contracts.Canonicalize([]byte(`{"b":3,"a\"\u007f":2,"":0,"a\"\n":1}`))
	if err != nil || werr != nil || !bytes.Equal(got, want) {
		t.Fatalf("got %q, %v; want %q, %v", got, err, want, werr)
	}
	// A Name out of order is refused like a Key.
	e.Reset()
	b = e.BeginObject(nil)
	b = e.Name(b, contracts.MustName("b"))
	b = e.Int(b, 1)
	b = e.Name(b, esc)
	if _, err := e.Finish(b); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("Name out of order: %v", err)
	}
}

func TestCanonicalEncoderAllocs(t *testing.T) {
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() {
		var e contracts.CanonicalEncoder
		if _, err := encodeBenchToken(&e, buf[:0]); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("encoding a token allocates %.1f times, want 0", n)
	}
}

// encodeBenchToken appends benchToken (bench_test.go) with the typed
// encoder, members in canonical order, as a token type's encoder would.
func encodeBenchToken(e *contracts.CanonicalEncoder, b []byte) ([]byte, error) {
	t := &benchToken
	b = e.BeginObject(b)
	b = e.Key(b, "exp")
	b = e.Int(b, t.Exp)
	b = e.Key(b, "issuer")
	b = e.String(b, t.Issuer)
	b = e.Key(b, "nonce")
	b = e.String(b, t.Nonce)
	b = e.Key(b, "scope")
	b = e.BeginArray(b)
	for i := range t.Scope {
		s := &t.Scope[i]
		b = e.BeginObject(b)
		b = e.Key(b, "actions")
		b = e.BeginArray(b)
		for _, a := range s.Actions {
			b = e.String(b, a)
		}
		b = e.EndArray(b)
		b = e.Key(b, "tool")
		b = e.String(b, s.Tool)
		b = e.EndObject(b)
	}
	b = e.EndArray(b)
	b = e.Key(b, "signature")
	b = e.String(b, t.Signature)
	b = e.Key(b, "subject")
	b = e.String(b, t.Subject)
	b = e.Key(b, "version")
	b = e.String(b, t.Version)
	b = e.EndObject(b)
	return e.Finish(b)
}

func TestCanonicalEncoderBenchToken(t *testing.T) {
	var e contracts.CanonicalEncoder
	got, err := encodeBenchToken(&e, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := contracts.MarshalStrict(benchToken)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("typed %q\nMarshalStrict %q, %v", got, want, err)
	}
}

// BenchmarkCanonicalEncoder compares the typed encoder writing the
// 300-byte token with encoding/json's Marshal of the same value (not
// canonical: the floor), and with the text paths (MarshalStrict,
// Canonicalize of the text), all in one run. The ratio to json.Marshal is
// reported by BenchmarkCanonicalEncoderRatio.
func BenchmarkCanonicalEncoder(b *testing.B) {
	raw := benchTokenJSON(b)
	buf := make([]byte, 0, 512)
	b.Run("typed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var e contracts.CanonicalEncoder
			if _, err := encodeBenchToken(&e, buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json_marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(&benchToken); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("marshal_strict", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := contracts.MarshalStrict(benchToken); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("canonicalize_text", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := contracts.Canonicalize(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCanonicalEncoderRatio interleaves the typed encoder and
// json.Marshal of the token in one loop and reports typed/json as the
// x-json metric, which is steadier than two separate timings on a shared
// machine.
func BenchmarkCanonicalEncoderRatio(b *testing.B) {
	buf := make([]byte, 0, 512)
	var typed, std int64
	b.ReportAllocs()
	for b.Loop() {
		t0 := nanotime()
		var e contracts.CanonicalEncoder
		if _, err := encodeBenchToken(&e, buf[:0]); err != nil {
			b.Fatal(err)
		}
		t1 := nanotime()
		if _, err := json.Marshal(&benchToken); err != nil {
			b.Fatal(err)
		}
		t2 := nanotime()
		typed += t1 - t0
		std += t2 - t1
	}
	b.ReportMetric(float64(typed)/float64(std), "x-json")
}

var encBenchStart = time.Now()

func nanotime() int64 { return int64(time.Since(encBenchStart)) }
