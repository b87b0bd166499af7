package contracts

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strconv"
)

// A FrameType is the "type" of a frame (schemas/frame.json).
type FrameType string

// The frame types of the contract; no others are accepted.
const (
	FrameHandshake    FrameType = "HANDSHAKE"
	FrameHandshakeAck FrameType = "HANDSHAKE_ACK"
	FrameData         FrameType = "DATA"
	FramePing         FrameType = "PING"
	FramePong         FrameType = "PONG"
	FrameClose        FrameType = "CLOSE"
)

// Valid reports whether t is one of the contract's frame types.
func (t FrameType) Valid() bool {
	switch t {
	case FrameHandshake, FrameHandshakeAck, FrameData, FramePing, FramePong, FrameClose:
		return true
	}
	return false
}

// FrameVersion is the only frame version this library reads and writes
// (PROTOCOL: v1 clients must reject unknown versions).
const FrameVersion = 1

// A Frame is one message of the Talos wire protocol (schemas/frame.json).
// On the wire it is the canonical JSON object
//
//	{"flags":0,"payload":"<base64url>","signature":"<base64url>","type":"DATA","version":1}
//
// with "signature" present only when the frame carries one. Frames are not
// length-prefixed: [DecodeFrame] reads one JSON object from the front of its
// input and returns the rest.
type Frame struct {
	// Version is always FrameVersion.
	Version int
	// Type is the frame type.
	Type FrameType
	// Flags is the frame's bit field. The contracts define no bits; frames
	// written by EncodeFrame carry 0.
	Flags uint32
	// Payload is the frame's payload, at most MaxFramePayload bytes.
	Payload []byte
	// Signature is nil when the frame is unsigned. The contracts do not
	// define what it covers; this package only carries it.
	Signature []byte
}

// EncodeFrame returns the wire bytes of an unsigned version-1 frame of type t
// with flags 0 carrying payload. It returns a TALOS_FRAME_INVALID error for an
// unknown type or a payload over [MaxFramePayload] bytes.
func EncodeFrame(payload []byte, t FrameType) ([]byte, error) {
	return Frame{Version: FrameVersion, Type: t, Payload: payload}.Encode()
}

// Encode returns the canonical wire bytes of f; see [Frame.AppendEncode].
func (f Frame) Encode() ([]byte, error) {
	return f.AppendEncode(nil)
}

// AppendEncode appends the canonical wire bytes of f to dst and returns the
// extended buffer. It returns a TALOS_FRAME_INVALID error, and dst unchanged,
// when f.Version is not FrameVersion, f.Type is not valid, or the payload or
// signature is over its limit. Every frame it writes is accepted by
// [DecodeFrame] and decodes to f (with an empty Signature read as absent).
func (f Frame) AppendEncode(dst []byte) ([]byte, error) {
	switch {
	case f.Version != FrameVersion:
		return dst, New(CodeFrameInvalid, "frame: unsupported version "+strconv.Itoa(f.Version))
	case !f.Type.Valid():
		return dst, New(CodeFrameInvalid, "frame: unknown frame type")
	case len(f.Payload) > MaxFramePayload:
		return dst, New(CodeFrameInvalid, "frame: payload larger than "+strconv.Itoa(MaxFramePayload)+" bytes")
	case len(f.Signature) > MaxFrameSignature:
		return dst, New(CodeFrameInvalid, "frame: signature larger than "+strconv.Itoa(MaxFrameSignature)+" bytes")
	}
	b := append(dst, `{"flags":`...)
	b = strconv.AppendUint(b, uint64(f.Flags), 10)
	b = append(b, `,"payload":"`...)
	b = base64.RawURLEncoding.AppendEncode(b, f.Payload)
	if len(f.Signature) > 0 {
		b = append(b, `","signature":"`...)
		b = base64.RawURLEncoding.AppendEncode(b, f.Signature)
	}
	b = append(b, `","type":"`...)
	b = append(b, f.Type...)
	b = append(b, `","version":1}`...)
	return b, nil
}

// DecodeFrame reads one frame from the front of data and returns it with the
// bytes that follow it. Leading JSON whitespace is skipped; members may come
// in any order. It reads at most [MaxFrameSize] bytes and rejects, with a
// *Error of code TALOS_FRAME_INVALID:
//   - an incomplete JSON value (the message contains "truncated"),
//   - malformed JSON, a value that is not an object, duplicate keys, lone
//     surrogates,
//   - unknown or missing members, null or mistyped values,
//   - a version other than 1, an unknown type (the message contains "type"),
//   - flags that are not an integer in [0, MaxFrameFlags],
//   - a payload or signature that is not strict base64url, an empty
//     signature.
//
// The returned Frame's slices do not alias data; rest does.
func DecodeFrame(data []byte) (Frame, []byte, error) {
	window := data
	if len(window) > MaxFrameSize {
		window = window[:MaxFrameSize]
	}
	f, n, err := decodeFrameObject(window)
	if err != nil {
		if err == errFrameEOF {
			if len(window) < len(data) {
				err = New(CodeFrameInvalid, "frame: larger than "+strconv.Itoa(MaxFrameSize)+" bytes")
			} else {
				err = New(CodeFrameInvalid, "frame: truncated JSON")
			}
		}
		return Frame{}, data, err
	}
	return f, data[n:], nil
}

// errFrameEOF marks input that ends inside the frame's JSON object.
var errFrameEOF = errors.New("frame: unexpected end of input")

// frameSyntaxError maps a json.Decoder error to errFrameEOF or a malformed
// JSON error.
func frameSyntaxError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errFrameEOF
	}
	return Wrap(CodeFrameInvalid, "frame: malformed JSON", err)
}

// Members of a frame object, as bits of a seen-set.
const (
	memberVersion = 1 << iota
	memberType
	memberFlags
	memberPayload
	memberSignature
)

// decodeFrameObject reads one JSON object from the front of data with a
// json.Decoder token by token (no case-insensitive field matching, no map),
// rejecting unknown and duplicate members, and returns the frame and the
// number of bytes read.
func decodeFrameObject(data []byte) (Frame, int, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Frame{}, 0, New(CodeFrameInvalid, "frame: truncated: no JSON value")
		}
		return Frame{}, 0, frameSyntaxError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return Frame{}, 0, New(CodeFrameInvalid, "frame: not a JSON object")
	}
	var seen int
	var raw [5]json.RawMessage // indexed like the member bits
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Frame{}, 0, frameSyntaxError(err)
		}
		key, _ := tok.(string)
		var bit, idx int
		switch key {
		case "version":
			bit, idx = memberVersion, 0
		case "type":
			bit, idx = memberType, 1
		case "flags":
			bit, idx = memberFlags, 2
		case "payload":
			bit, idx = memberPayload, 3
		case "signature":
			bit, idx = memberSignature, 4
		default:
			if len(key) > 64 {
				key = key[:64] + "..."
			}
			return Frame{}, 0, New(CodeFrameInvalid, "frame: unknown member "+strconv.Quote(key))
		}
		if seen&bit != 0 {
			return Frame{}, 0, New(CodeFrameInvalid, "frame: duplicate member "+strconv.Quote(key))
		}
		seen |= bit
		if err := dec.Decode(&raw[idx]); err != nil {
			return Frame{}, 0, frameSyntaxError(err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return Frame{}, 0, frameSyntaxError(err)
	}
	f, err := parseFrameMembers(seen, &raw)
	if err != nil {
		return Frame{}, 0, err
	}
	return f, int(dec.InputOffset()), nil
}

func parseFrameMembers(seen int, raw *[5]json.RawMessage) (Frame, error) {
	f := Frame{Version: FrameVersion}
	switch {
	case seen&memberVersion == 0:
		return Frame{}, New(CodeFrameInvalid, "frame: missing version")
	case string(raw[0]) != "1":
		return Frame{}, New(CodeFrameInvalid, "frame: unsupported version (want the integer 1)")
	}

	var typ string
	switch {
	case seen&memberType == 0:
		return Frame{}, New(CodeFrameInvalid, "frame: missing type")
	case !jsonString(raw[1], &typ):
		return Frame{}, New(CodeFrameInvalid, "frame: type is not a string")
	case !FrameType(typ).Valid():
		return Frame{}, New(CodeFrameInvalid, "frame: unknown frame type")
	}
	f.Type = FrameType(typ)

	if seen&memberFlags != 0 {
		n, ok := parseCanonicalUint(raw[2])
		if !ok || n > MaxFrameFlags {
			return Frame{}, New(CodeFrameInvalid, "frame: flags is not an integer in [0, 4294967295]")
		}
		f.Flags = uint32(n)
	}

	var s string
	switch {
	case seen&memberPayload == 0:
		return Frame{}, New(CodeFrameInvalid, "frame: missing payload")
	case !jsonString(raw[3], &s):
		return Frame{}, New(CodeFrameInvalid, "frame: payload is not a string")
	}
	p, err := DecodeBase64URL(s)
	if err != nil {
		return Frame{}, Wrap(CodeFrameInvalid, "frame: payload is not strict base64url", err)
	}
	if len(p) > MaxFramePayload {
		return Frame{}, New(CodeFrameInvalid, "frame: payload larger than "+strconv.Itoa(MaxFramePayload)+" bytes")
	}
	f.Payload = p
	if f.Payload == nil {
		f.Payload = []byte{}
	}

	if seen&memberSignature != 0 {
		if !jsonString(raw[4], &s) {
			return Frame{}, New(CodeFrameInvalid, "frame: signature is not a string")
		}
		if s == "" {
			return Frame{}, New(CodeFrameInvalid, "frame: empty signature")
		}
		sig, err := DecodeBase64URL(s)
		if err != nil {
			return Frame{}, Wrap(CodeFrameInvalid, "frame: signature is not strict base64url", err)
		}
		if len(sig) > MaxFrameSignature {
			return Frame{}, New(CodeFrameInvalid, "frame: signature larger than "+strconv.Itoa(MaxFrameSignature)+" bytes")
		}
		f.Signature = sig
	}
	return f, nil
}
