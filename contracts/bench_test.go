package contracts_test

import (
	"encoding/json"
	"testing"

	"github.com/gowebpki/jcs"
	"github.com/talosgo/talos/contracts"
)

// benchToken is a token-like object of about 300 bytes (the pinned v1.0
// capability token of golden capability.json), as a Go value and as
// non-canonical JSON text (keys out of order, with whitespace).
type benchScope struct {
	Tool    string   `json:"tool"`
	Actions []string `json:"actions"`
}

type benchTokenT struct {
	Version   string       `json:"version"`
	Issuer    string       `json:"issuer"`
	Subject   string       `json:"subject"`
	Scope     []benchScope `json:"scope"`
	Exp       int64        `json:"exp"`
	Nonce     string       `json:"nonce"`
	Signature string       `json:"signature"`
}

var benchToken = benchTokenT{
	Version:   "1.0",
	Issuer:    "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG",
	Subject:   "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
	Scope:     []benchScope{{Tool: "filesystem", Actions: []string{"read", "write"}}},
	Exp:       1767504000,
	Nonce:     "unique-nonce-12345678",
	Signature: "bFOnXopG1vdRSGkOBE3c5aeS8-UuG84j9JFXUSaIbr7HYwl2oFwu8MtUHkoy88nPSFN3Zx0sXb2xPnX5MxTACQ",
}

func benchTokenJSON(b *testing.B) []byte {
	b.Helper()
	raw, err := json.MarshalIndent(benchToken, "", " ")
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkCanonicalize compares canonicalizing the token's JSON text with
// the reference RFC 8785 implementation and with encoding/json's Marshal of
// the same value (which is not canonical: it is the floor for "producing the
// bytes of a token"). Marshal is contracts.Marshal of the Go value.
func BenchmarkCanonicalize(b *testing.B) {
	raw := benchTokenJSON(b)
	canon, err := contracts.Canonicalize(raw)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("token: %d bytes of input, %d canonical", len(raw), len(canon))

	b.Run("ours", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			if _, err := contracts.Canonicalize(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ours_strict", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			if _, err := contracts.CanonicalizeStrict(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jcs_transform", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			if _, err := jcs.Transform(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Input already canonical (what our encoders and the other SDKs send):
	// the one-pass check instead of jcs's parse and print.
	b.Run("ours_canonical_input", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(canon)))
		for b.Loop() {
			if _, err := contracts.CanonicalizeStrict(canon); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("jcs_transform_canonical_input", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(canon)))
		for b.Loop() {
			if _, err := jcs.Transform(canon); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ours_marshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(canon)))
		for b.Loop() {
			if _, err := contracts.MarshalStrict(benchToken); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json_marshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(canon)))
		for b.Loop() {
			if _, err := json.Marshal(benchToken); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFrame measures the frame codec on a 1 KiB payload beside
// encoding/json of the same object shape.
func BenchmarkFrame(b *testing.B) {
	payload := make([]byte, 1024)
	enc, err := contracts.EncodeFrame(payload, contracts.FrameData)
	if err != nil {
		b.Fatal(err)
	}
	type jsonFrame struct {
		Flags   int    `json:"flags"`
		Payload []byte `json:"payload"`
		Type    string `json:"type"`
		Version int    `json:"version"`
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		buf := make([]byte, 0, len(enc))
		f := contracts.Frame{Version: 1, Type: contracts.FrameData, Payload: payload}
		for b.Loop() {
			if _, err := f.AppendEncode(buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			if _, _, err := contracts.DecodeFrame(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json_marshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		f := jsonFrame{Payload: payload, Type: "DATA", Version: 1}
		for b.Loop() {
			if _, err := json.Marshal(f); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json_unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		std, _ := json.Marshal(jsonFrame{Payload: payload, Type: "DATA", Version: 1})
		for b.Loop() {
			var f jsonFrame
			if err := json.Unmarshal(std, &f); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkUUIDv7 measures identifier generation and the strict check.
func BenchmarkUUIDv7(b *testing.B) {
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = contracts.NewUUIDv7()
		}
	})
	b.Run("is_uuidv7", func(b *testing.B) {
		b.ReportAllocs()
		id := contracts.NewUUIDv7()
		for b.Loop() {
			if !contracts.IsUUIDv7(id) {
				b.Fatal("not v7")
			}
		}
	})
}
