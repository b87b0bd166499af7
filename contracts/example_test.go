package contracts_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/talosgo/talos/contracts"
)

func ExampleCanonicalize() {
	out, err := contracts.Canonicalize([]byte(`{ "z": 1, "a": [1.0, "\u00e9"], "m": null }`))
	fmt.Println(string(out), err)

	_, err = contracts.Canonicalize([]byte(`{"a":1,"a":2}`))
	fmt.Println(contracts.CodeOf(err))

	_, err = contracts.CanonicalizeStrict([]byte(`{"amount":0.5}`))
	fmt.Println(err)
	// Output:
	// {"a":[1,"é"],"m":null,"z":1} <nil>
	// TALOS_INVALID_INPUT
	// TALOS_INVALID_INPUT: canonical json: non-integer number in a signed object
}

func ExampleMarshalStrict() {
	type grant struct {
		Tool    string   `json:"tool"`
		Actions []string `json:"actions"`
	}
	b, err := contracts.MarshalStrict(map[string]any{
		"version": "1.0",
		"scope":   []grant{{Tool: "filesystem", Actions: []string{"read"}}},
		"exp":     1767504000,
	})
	fmt.Println(string(b), err)
	// Output: {"exp":1767504000,"scope":[{"actions":["read"],"tool":"filesystem"}],"version":"1.0"} <nil>
}

func ExampleDecodeBase64URL() {
	fmt.Println(contracts.EncodeBase64URL([]byte{0xfb, 0xff}))

	b, err := contracts.DecodeBase64URL("-_8")
	fmt.Printf("%x %v\n", b, err)

	for _, s := range []string{"Zg==", "Zm+v", "Zh", "Zm9v\n"} {
		_, err := contracts.DecodeBase64URL(s)
		fmt.Printf("%q: %v\n", s, err)
	}

	// Only for fields documented as legacy (std alphabet, padding).
	b, err = contracts.DecodeBase64Lenient("+/8=")
	fmt.Printf("%x %v\n", b, err)
	// Output:
	// -_8
	// fbff <nil>
	// "Zg==": TALOS_INVALID_INPUT: base64url: invalid character
	// "Zm+v": TALOS_INVALID_INPUT: base64url: invalid character
	// "Zh": TALOS_INVALID_INPUT: base64url: non-canonical encoding
	// "Zm9v\n": TALOS_INVALID_INPUT: base64url: invalid character
	// fbff <nil>
}

func ExampleNewUUIDv7() {
	id := contracts.NewUUIDv7()
	fmt.Println(len(id), contracts.IsUUIDv7(id))

	fmt.Println(contracts.IsUUIDv7("0190a5e0-7c3a-7000-8000-000000000001"))
	fmt.Println(contracts.IsUUIDv7("0190A5E0-7C3A-7000-8000-000000000001"))     // uppercase
	fmt.Println(contracts.IsUUIDv7Fold("0190A5E0-7C3A-7000-8000-000000000001")) // structure only
	// Output:
	// 36 true
	// true
	// false
	// true
}

func ExampleUUIDv7Generator() {
	// A frozen clock: identifiers still increase within the millisecond.
	at := time.Date(2026, 1, 4, 0, 0, 0, 0, time.UTC)
	g := contracts.NewUUIDv7Generator(func() time.Time { return at })
	a, b := g.New(), g.New()
	fmt.Println(a < b)

	ts, _ := contracts.UUIDv7Time(b)
	fmt.Println(ts)
	// Output:
	// true
	// 2026-01-04 00:00:00 +0000 UTC
}

func ExampleEncodeFrame() {
	wire, err := contracts.EncodeFrame([]byte("test payload"), contracts.FrameData)
	fmt.Println(string(wire), err)

	// Frames are not length-prefixed: DecodeFrame returns what follows.
	stream := append(wire, `{"version":1,"type":"PING","payload":""}`...)
	f, rest, err := contracts.DecodeFrame(stream)
	fmt.Printf("%s %q %v\n", f.Type, f.Payload, err)
	f, rest, err = contracts.DecodeFrame(rest)
	fmt.Printf("%s %d %v\n", f.Type, len(rest), err)

	_, _, err = contracts.DecodeFrame([]byte(`{"version`))
	fmt.Println(err)
	_, _, err = contracts.DecodeFrame([]byte(`{"version":1,"type":"UNKNOWN","payload":""}`))
	fmt.Println(errors.Is(err, contracts.ErrFrameInvalid), err)
	// Output:
	// {"flags":0,"payload":"dGVzdCBwYXlsb2Fk","type":"DATA","version":1} <nil>
	// DATA "test payload" <nil>
	// PING 0 <nil>
	// TALOS_FRAME_INVALID: frame: truncated JSON
	// true TALOS_FRAME_INVALID: frame: unknown frame type
}

func ExampleEncodeCursor() {
	c, err := contracts.EncodeCursor(1703721600, "0190a5e0-7c3a-7000-8000-000000000001")
	fmt.Println(c, err)

	pos, err := contracts.DecodeCursor(c)
	fmt.Println(pos.Timestamp, pos.EventID, err)

	_, err = contracts.DecodeCursor("MDE6eA") // "01:x"
	fmt.Println(err)
	// Output:
	// MTcwMzcyMTYwMDowMTkwYTVlMC03YzNhLTcwMDAtODAwMC0wMDAwMDAwMDAwMDE <nil>
	// 1703721600 0190a5e0-7c3a-7000-8000-000000000001 <nil>
	// TALOS_INVALID_INPUT: cursor: timestamp is not a canonical non-negative decimal integer
}

func ExampleCompareNewestFirst() {
	feed := []contracts.Cursor{
		{Timestamp: 900, EventID: "bbb"},
		{Timestamp: 1000, EventID: "aaa"},
		{Timestamp: 1000, EventID: "bbb"},
	}
	slices.SortFunc(feed, contracts.CompareNewestFirst)
	fmt.Println(feed)
	// Output: [{1000 bbb} {1000 aaa} {900 bbb}]
}

func ExampleError() {
	err := contracts.Wrap(contracts.CodeFrameInvalid, "frame: truncated JSON", errors.New("unexpected EOF"))
	fmt.Println(err)
	fmt.Println(errors.Is(err, contracts.ErrFrameInvalid), errors.Is(err, contracts.ErrInvalidInput))
	fmt.Println(contracts.CodeOf(err), contracts.HTTPStatus(contracts.CodeOf(err)))
	fmt.Println(contracts.CodeOf(errors.New("anything else")))
	// Output:
	// TALOS_FRAME_INVALID: frame: truncated JSON
	// true false
	// TALOS_FRAME_INVALID 400
	// INTERNAL
}

func ExampleGoldenVectors() {
	vs, err := contracts.GoldenVectors("identity")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, v := range vs {
		var out struct {
			Address string `json:"address"`
		}
		if v.Expect == contracts.OutcomeOK {
			_ = json.Unmarshal(v.Output, &out)
		}
		line := v.Name + " " + v.Expect
		if out.Address != "" {
			line += " address " + out.Address[:16] + "..."
		}
		fmt.Println(line)
	}
	// Output:
	// seed-01 ok address 4a67330b803d5c88...
	// seed-02 ok address 2c5a92ed92c0b799...
	// did-key-spec-example ok
	// invalid-seed-length TALOS_INVALID_INPUT
}
