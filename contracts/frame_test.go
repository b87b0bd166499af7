package contracts_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
)

var allFrameTypes = []contracts.FrameType{
	contracts.FrameHandshake, contracts.FrameHandshakeAck, contracts.FrameData,
	contracts.FramePing, contracts.FramePong, contracts.FrameClose,
}

func TestFrameRoundTrip(t *testing.T) {
	sig := bytes.Repeat([]byte{0xfb}, 64)
	for _, typ := range allFrameTypes {
		for _, f := range []contracts.Frame{
			{Version: 1, Type: typ, Payload: []byte{}},
			{Version: 1, Type: typ, Payload: []byte("test payload")},
			{Version: 1, Type: typ, Flags: 1<<32 - 1, Payload: []byte{0, 0xff}, Signature: sig},
		} {
			enc, err := f.Encode()
			if err != nil {
				t.Fatalf("Encode(%+v): %v", f, err)
			}
			if canon, err := contracts.Canonicalize(enc); err != nil || !bytes.Equal(canon, enc) {
				t.Errorf("Encode output %s is not canonical JSON (%s, %v)", enc, canon, err)
			}
			got, rest, err := contracts.DecodeFrame(enc)
			if err != nil {
				t.Fatalf("DecodeFrame(%s): %v", enc, err)
			}
			if len(rest) != 0 || !frameEqual(got, f) {
				t.Errorf("DecodeFrame(%s) = %+v, rest %q; want %+v", enc, got, rest, f)
			}
		}
	}
}

func frameEqual(a, b contracts.Frame) bool {
	return a.Version == b.Version && a.Type == b.Type && a.Flags == b.Flags &&
		bytes.Equal(a.Payload, b.Payload) && bytes.Equal(a.Signature, b.Signature)
}

func TestEncodeFrameExact(t *testing.T) {
	got, err := contracts.EncodeFrame([]byte("hi"), contracts.FramePing)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"flags":0,"payload":"aGk","type":"PING","version":1}`; string(got) != want {
		t.Errorf("EncodeFrame = %s, want %s", got, want)
	}
	f := contracts.Frame{Version: 1, Type: contracts.FrameData, Flags: 3, Payload: []byte{0xfb, 0xff}, Signature: []byte{0xff}}
	got, err = f.AppendEncode([]byte("prefix"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `prefix{"flags":3,"payload":"-_8","signature":"_w","type":"DATA","version":1}`; string(got) != want {
		t.Errorf("AppendEncode = %s, want %s", got, want)
	}
}

func TestEncodeFrameRejects(t *testing.T) {
	for name, f := range map[string]contracts.Frame{
		"version 0":         {Type: contracts.FrameData},
		"version 2":         {Version: 2, Type: contracts.FrameData},
		"unknown type":      {Version: 1, Type: "UNKNOWN"},
		"lowercase type":    {Version: 1, Type: "data"},
		"payload too large": {Version: 1, Type: contracts.FrameData, Payload: make([]byte, contracts.MaxFramePayload+1)},
		"signature too big": {Version: 1, Type: contracts.FrameData, Signature: make([]byte, contracts.MaxFrameSignature+1)},
	} {
		t.Run(name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := f.AppendEncode(dst)
			if contracts.CodeOf(err) != contracts.CodeFrameInvalid {
				t.Fatalf("AppendEncode: %v, want a %s error", err, contracts.CodeFrameInvalid)
			}
			if string(out) != "keep" {
				t.Errorf("dst changed to %q on error", out)
			}
		})
	}
	if _, err := contracts.EncodeFrame(nil, "BOGUS"); err == nil || !strings.Contains(err.Error(), "type") {
		t.Errorf("EncodeFrame with a bad type: %v", err)
	}
}

func TestDecodeFrameStream(t *testing.T) {
	a, _ := contracts.EncodeFrame([]byte("one"), contracts.FrameData)
	b, _ := contracts.EncodeFrame([]byte("two"), contracts.FrameClose)
	stream := append(append(append([]byte(" \n"), a...), '\n'), b...)

	f, rest, err := contracts.DecodeFrame(stream)
	if err != nil || string(f.Payload) != "one" || f.Type != contracts.FrameData {
		t.Fatalf("first frame %+v, %v", f, err)
	}
	f, rest, err = contracts.DecodeFrame(rest)
	if err != nil || string(f.Payload) != "two" || f.Type != contracts.FrameClose || len(rest) != 0 {
		t.Fatalf("second frame %+v, rest %q, %v", f, rest, err)
	}

	// Member order and insignificant whitespace are free; flags defaults to 0.
	in := []byte(`{ "version" : 1, "payload":"dGVzdA", "type":"PONG" }tail`)
	f, rest, err = contracts.DecodeFrame(in)
	if err != nil || f.Type != contracts.FramePong || string(f.Payload) != "test" || f.Flags != 0 || f.Signature != nil {
		t.Fatalf("DecodeFrame(%s) = %+v, %v", in, f, err)
	}
	if string(rest) != "tail" {
		t.Errorf("rest = %q, want %q", rest, "tail")
	}
	// Escapes in strings are plain JSON: "Z\u0067" is "Zg".
	f, _, err = contracts.DecodeFrame([]byte(`{"version":1,"type":"DATA","payload":"Z\u0067"}`))
	if err != nil || string(f.Payload) != "f" {
		t.Errorf("escaped payload: %+v, %v", f, err)
	}
	// The frame does not alias the input.
	in2 := []byte(`{"flags":0,"payload":"dGVzdA","type":"DATA","version":1}`)
	f, _, _ = contracts.DecodeFrame(in2)
	for i := range in2 {
		in2[i] = 'x'
	}
	if string(f.Payload) != "test" || f.Type != contracts.FrameData {
		t.Errorf("frame changed with its input: %+v", f)
	}
}

func TestDecodeFrameRejects(t *testing.T) {
	big := `{"flags":0,"payload":"` + strings.Repeat("A", contracts.MaxFrameSize) + `","type":"DATA","version":1}`
	overPayload := `{"flags":0,"payload":"` + contracts.EncodeBase64URL(make([]byte, contracts.MaxFramePayload+1)) + `","type":"DATA","version":1}`
	for _, c := range []struct {
		name, in, contains string
	}{
		{"empty", ``, "truncat"},
		{"whitespace only", " \n\t", "truncat"},
		{"truncated key", `{"version`, "truncat"},
		{"truncated value", `{"version":1,"type":"DA`, "truncat"},
		{"truncated after comma", `{"version":1,`, "truncat"},
		{"missing brace", `{"flags":0,"payload":"","type":"DATA","version":1`, "truncat"},
		{"garbage", "\xde\xad\xbe\xef", "malformed"},
		{"not an object", `[1,2]`, "object"},
		{"string", `"DATA"`, "object"},
		{"number", `1 `, "object"},
		{"null", `null`, "object"},
		{"unknown type", `{"version":1,"type":"UNKNOWN","flags":0,"payload":""}`, "type"},
		{"lowercase type", `{"version":1,"type":"data","payload":""}`, "type"},
		{"type not string", `{"version":1,"type":3,"payload":""}`, "type"},
		{"type null", `{"version":1,"type":null,"payload":""}`, "type"},
		{"missing type", `{"version":1,"payload":""}`, "type"},
		{"missing version", `{"type":"DATA","payload":""}`, "version"},
		{"version 2", `{"version":2,"type":"DATA","payload":""}`, "version"},
		{"version 0", `{"version":0,"type":"DATA","payload":""}`, "version"},
		{"version string", `{"version":"1","type":"DATA","payload":""}`, "version"},
		{"version float", `{"version":1.0,"type":"DATA","payload":""}`, "version"},
		{"version exponent", `{"version":1e0,"type":"DATA","payload":""}`, "version"},
		{"version null", `{"version":null,"type":"DATA","payload":""}`, "version"},
		{"missing payload", `{"version":1,"type":"DATA"}`, "payload"},
		{"payload null", `{"version":1,"type":"DATA","payload":null}`, "payload"},
		{"payload padded", `{"version":1,"type":"DATA","payload":"Zg=="}`, "payload"},
		{"payload std alphabet", `{"version":1,"type":"DATA","payload":"Zm+v"}`, "payload"},
		{"payload trailing bits", `{"version":1,"type":"DATA","payload":"Zh"}`, "payload"},
		{"payload too large", overPayload, "payload"},
		{"flags negative", `{"version":1,"type":"DATA","payload":"","flags":-1}`, "flags"},
		{"flags float", `{"version":1,"type":"DATA","payload":"","flags":0.5}`, "flags"},
		{"flags zero float", `{"version":1,"type":"DATA","payload":"","flags":0.0}`, "flags"},
		{"flags over 32 bits", `{"version":1,"type":"DATA","payload":"","flags":4294967296}`, "flags"},
		{"flags null", `{"version":1,"type":"DATA","payload":"","flags":null}`, "flags"},
		{"flags string", `{"version":1,"type":"DATA","payload":"","flags":"0"}`, "flags"},
		{"signature empty", `{"version":1,"type":"DATA","payload":"","signature":""}`, "signature"},
		{"signature null", `{"version":1,"type":"DATA","payload":"","signature":null}`, "signature"},
		{"signature padded", `{"version":1,"type":"DATA","payload":"","signature":"_w=="}`, "signature"},
		{"unknown member", `{"version":1,"type":"DATA","payload":"","extra":0}`, "unknown member"},
		{"empty member name", `{"":0,"version":1,"type":"DATA","payload":""}`, "unknown member"},
		{"case variant member", `{"version":1,"Type":"DATA","type":"DATA","payload":""}`, "unknown member"},
		{"duplicate key", `{"version":1,"type":"DATA","type":"PING","payload":""}`, ""},
		{"lone surrogate", `{"version":1,"type":"DATA","payload":"","signature":"\ud800"}`, ""},
		{"too large", big, "larger"},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := []byte(c.in)
			f, rest, err := contracts.DecodeFrame(data)
			if contracts.CodeOf(err) != contracts.CodeFrameInvalid {
				t.Fatalf("DecodeFrame = %+v, %v; want a %s error", f, err, contracts.CodeFrameInvalid)
			}
			if !strings.Contains(err.Error(), c.contains) {
				t.Errorf("error %q does not contain %q", err, c.contains)
			}
			if !bytes.Equal(rest, data) {
				t.Errorf("rest after error is not the input")
			}
			if !frameEqual(f, contracts.Frame{}) {
				t.Errorf("non-zero frame %+v with the error", f)
			}
		})
	}
}

// TestFrameAppendEncodeAllocs: encoding into a buffer with room allocates
// nothing, and the strict UUIDv7 check never allocates.
func TestFrameAppendEncodeAllocs(t *testing.T) {
	f := contracts.Frame{Version: 1, Type: contracts.FrameData, Payload: make([]byte, 1024), Signature: make([]byte, 64)}
	buf := make([]byte, 0, 2048)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := f.AppendEncode(buf[:0]); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("AppendEncode allocates %.1f times per call, want 0", n)
	}
	id := contracts.NewUUIDv7()
	ok := true
	if n := testing.AllocsPerRun(100, func() { ok = ok && contracts.IsUUIDv7(id) }); n != 0 || !ok {
		t.Errorf("IsUUIDv7 allocates %.1f times per call, want 0", n)
	}
}
