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
		return dst, Errorf(CodeFrameInvalid, "frame: unsupported version "+strconv.Itoa(f.Version))
	case !f.Type.Valid():
		return dst, Errorf(CodeFrameInvalid, "frame: unknown frame type")
	case len(f.Payload) > MaxFramePayload:
		return dst, Errorf(CodeFrameInvalid, "frame: payload larger than "+strconv.Itoa(MaxFramePayload)+" bytes")
	case len(f.Signature) > MaxFrameSignature:
		return dst, Errorf(CodeFrameInvalid, "frame: signature larger than "+strconv.Itoa(MaxFrameSignature)+" bytes")
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
	dec := json.NewDecoder(bytes.NewReader(window))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		switch {
		case errors.Is(err, io.EOF):
			return Frame{}, data, Errorf(CodeFrameInvalid, "frame: truncated: no JSON value")
		case errors.Is(err, io.ErrUnexpectedEOF) && len(window) < len(data):
			return Frame{}, data, Errorf(CodeFrameInvalid, "frame: larger than "+strconv.Itoa(MaxFrameSize)+" bytes")
		case errors.Is(err, io.ErrUnexpectedEOF):
			return Frame{}, data, Errorf(CodeFrameInvalid, "frame: truncated JSON")
		default:
			return Frame{}, data, Wrap(CodeFrameInvalid, "frame: malformed JSON", err)
		}
	}
	rest := data[dec.InputOffset():]
	f, err := parseFrameObject(raw)
	if err != nil {
		return Frame{}, data, err
	}
	return f, rest, nil
}

var frameMembers = map[string]bool{
	"version": true, "type": true, "flags": true, "payload": true, "signature": true,
}

func parseFrameObject(raw json.RawMessage) (Frame, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return Frame{}, Errorf(CodeFrameInvalid, "frame: not a JSON object")
	}
	if err := CheckJSON(raw, false); err != nil {
		return Frame{}, Wrap(CodeFrameInvalid, "frame: invalid JSON", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return Frame{}, Wrap(CodeFrameInvalid, "frame: malformed JSON object", err)
	}
	unknown := ""
	for k := range m {
		if !frameMembers[k] && (unknown == "" || k < unknown) {
			unknown = k
		}
	}
	if unknown != "" {
		if len(unknown) > 64 {
			unknown = unknown[:64] + "..."
		}
		return Frame{}, Errorf(CodeFrameInvalid, "frame: unknown member "+strconv.Quote(unknown))
	}

	f := Frame{Version: FrameVersion}
	v, ok := m["version"]
	switch {
	case !ok:
		return Frame{}, Errorf(CodeFrameInvalid, "frame: missing version")
	case string(v) != "1":
		return Frame{}, Errorf(CodeFrameInvalid, "frame: unsupported version (want the integer 1)")
	}

	v, ok = m["type"]
	var typ string
	switch {
	case !ok:
		return Frame{}, Errorf(CodeFrameInvalid, "frame: missing type")
	case !jsonString(v, &typ):
		return Frame{}, Errorf(CodeFrameInvalid, "frame: type is not a string")
	case !FrameType(typ).Valid():
		return Frame{}, Errorf(CodeFrameInvalid, "frame: unknown frame type")
	}
	f.Type = FrameType(typ)

	if v, ok = m["flags"]; ok {
		n, ok := parseCanonicalUint(v)
		if !ok || n > MaxFrameFlags {
			return Frame{}, Errorf(CodeFrameInvalid, "frame: flags is not an integer in [0, 4294967295]")
		}
		f.Flags = uint32(n)
	}

	v, ok = m["payload"]
	var s string
	switch {
	case !ok:
		return Frame{}, Errorf(CodeFrameInvalid, "frame: missing payload")
	case !jsonString(v, &s):
		return Frame{}, Errorf(CodeFrameInvalid, "frame: payload is not a string")
	}
	p, err := DecodeBase64URL(s)
	if err != nil {
		return Frame{}, Wrap(CodeFrameInvalid, "frame: payload is not strict base64url", err)
	}
	if len(p) > MaxFramePayload {
		return Frame{}, Errorf(CodeFrameInvalid, "frame: payload larger than "+strconv.Itoa(MaxFramePayload)+" bytes")
	}
	f.Payload = p
	if f.Payload == nil {
		f.Payload = []byte{}
	}

	if v, ok = m["signature"]; ok {
		if !jsonString(v, &s) {
			return Frame{}, Errorf(CodeFrameInvalid, "frame: signature is not a string")
		}
		if s == "" {
			return Frame{}, Errorf(CodeFrameInvalid, "frame: empty signature")
		}
		sig, err := DecodeBase64URL(s)
		if err != nil {
			return Frame{}, Wrap(CodeFrameInvalid, "frame: signature is not strict base64url", err)
		}
		if len(sig) > MaxFrameSignature {
			return Frame{}, Errorf(CodeFrameInvalid, "frame: signature larger than "+strconv.Itoa(MaxFrameSignature)+" bytes")
		}
		f.Signature = sig
	}
	return f, nil
}
