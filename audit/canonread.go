package audit

import (
	"encoding/json"
	"strings"
	"sync"
	"unsafe"
)

// readCanonical reads an event that is written exactly in the canonical
// form [Event.Seal] produces (members in RFC 8785 order, no whitespace,
// only the escapes RFC 8785 writes). It is AppendEntry's fast path: a
// single pass that slices every string from the input without copying
// it. ok is false for anything else (including every malformed input);
// the caller then takes the general path, [ParseEvent], which accepts any
// JSON form and says what is wrong.
//
// readCanonical checks nothing itself: its caller validates the event and
// requires that sealing it reproduces raw byte for byte. Since the
// canonical encoding is one-to-one, equality proves both that the value
// read is the value written and that its event_hash recomputes.
func readCanonical(raw []byte) (e Event, ok bool) {
	// The strings of e alias raw (no copy of the text): AppendEntry only
	// reads e while sealing it again, and hands out nothing of it but the
	// event hash, which is cloned below.
	r := canonReader{s: unsafe.String(unsafe.SliceData(raw), len(raw)), ok: true}
	h, p := &e.HTTP, &e.Principal
	r.lit(`{"event_hash":`)
	e.EventHash = strings.Clone(r.str()) // returned in the Receipt: must not alias raw
	r.lit(`,"event_id":`)
	e.EventID = r.str()
	r.lit(`,"http":{`)
	if r.opt(`"client_ip_hash":`) {
		h.ClientIPHash = r.str()
		r.lit(`,"client_ip_hash_alg":`)
		h.ClientIPHashAlg = r.str()
		r.lit(`,"client_ip_hash_key_id":`)
		h.ClientIPHashKeyID = r.str()
		r.lit(`,`)
	}
	r.lit(`"method":`)
	h.Method = r.str()
	r.lit(`,"path":`)
	h.Path = r.str()
	r.lit(`,"status_code":`)
	h.StatusCode = r.smallInt()
	r.lit(`},"meta":{`)
	e.Meta = r.meta()
	r.lit(`,"outcome":`)
	e.Outcome = r.str()
	r.lit(`,"principal":{"auth_mode":`)
	p.AuthMode = r.str()
	r.lit(`,"principal_id":`)
	p.PrincipalID = r.str()
	if r.opt(`,"signer_key_id":`) {
		p.SignerKeyID = r.str()
	}
	if r.opt(`,"team_id":`) {
		p.TeamID = r.str()
	}
	r.lit(`},"request_id":`)
	e.RequestID = r.str()
	if r.opt(`,"resource":{`) {
		e.Resource = &Resource{}
		if r.opt(`"resource_id":`) {
			e.Resource.ResourceID = r.str()
			if r.opt(`,"resource_type":`) {
				e.Resource.ResourceType = r.str()
			}
		} else if r.opt(`"resource_type":`) {
			e.Resource.ResourceType = r.str()
		}
		r.lit(`}`)
	}
	r.lit(`,"schema_id":`)
	e.SchemaID = r.str()
	r.lit(`,"schema_version":`)
	e.SchemaVersion = r.str()
	r.lit(`,"surface_id":`)
	e.SurfaceID = r.str()
	r.lit(`,"ts":`)
	e.TS = r.str()
	r.lit(`}`)
	return e, r.ok && r.i == len(r.s)
}

// metaPool recycles the meta maps of readCanonical: AppendEntry's event
// lives only while it is validated and sealed again, and nothing keeps its
// map (Log.Append and the Redactor read it, the store gets bytes), so
// AppendEntry hands the map back with putMeta when it is done.
var metaPool = sync.Pool{New: func() any { return make(map[string]any, 8) }}

func putMeta(m map[string]any) {
	if m != nil && len(m) <= MaxMetaKeys {
		clear(m)
		metaPool.Put(m)
	}
}

type canonReader struct {
	s  string
	i  int
	ok bool // false after the first mismatch; later reads return zero values
}

// lit consumes x or fails.
func (r *canonReader) lit(x string) {
	if !r.opt(x) {
		r.ok = false
	}
}

// opt consumes x if it comes next.
func (r *canonReader) opt(x string) bool {
	if r.ok && strings.HasPrefix(r.s[r.i:], x) {
		r.i += len(x)
		return true
	}
	return false
}

// str reads a string with RFC 8785's escapes only. It does not look for
// raw control characters or invalid UTF-8: the caller's re-encoding would
// differ from the input, which sends the input to ParseEvent.
func (r *canonReader) str() string {
	if !r.ok || r.i >= len(r.s) || r.s[r.i] != '"' {
		r.ok = false
		return ""
	}
	start := r.i + 1
	n := strings.IndexByte(r.s[start:], '"')
	if n < 0 {
		r.ok = false
		return ""
	}
	if strings.IndexByte(r.s[start:start+n], '\\') >= 0 {
		return r.escaped(start)
	}
	r.i = start + n + 1
	return r.s[start : start+n]
}

// escaped decodes a string from start (after the quote) that holds
// escapes.
func (r *canonReader) escaped(start int) string {
	var b strings.Builder
	for j := start; j < len(r.s); j++ {
		c := r.s[j]
		switch {
		case c == '"':
			r.i = j + 1
			return b.String()
		case c < 0x20:
			r.ok = false
			return ""
		case c != '\\':
			b.WriteByte(c)
			continue
		}
		if j+1 >= len(r.s) {
			break
		}
		j++
		switch r.s[j] {
		case '"', '\\':
			b.WriteByte(r.s[j])
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			// Only \u00XX for control characters (lowercase hex).
			if j+4 >= len(r.s) || r.s[j+1:j+3] != "00" {
				r.ok = false
				return ""
			}
			hi, lo := unhex(r.s[j+3]), unhex(r.s[j+4])
			if hi < 0 || hi > 1 || lo < 0 {
				r.ok = false
				return ""
			}
			b.WriteByte(byte(hi<<4 | lo))
			j += 4
		default:
			r.ok = false
			return ""
		}
	}
	r.ok = false
	return ""
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// smallInt reads 1 to 9 decimal digits.
func (r *canonReader) smallInt() int {
	n, j := 0, r.i
	for j < len(r.s) && j-r.i < 9 && r.s[j] >= '0' && r.s[j] <= '9' {
		n = n*10 + int(r.s[j]-'0')
		j++
	}
	if !r.ok || j == r.i {
		r.ok = false
		return 0
	}
	r.i = j
	return n
}

// meta reads the members of the meta object after its '{' and the '}'.
// Numbers come back as json.Number, as ParseEvent returns them.
func (r *canonReader) meta() map[string]any {
	m := metaPool.Get().(map[string]any)
	if r.opt(`}`) {
		return m
	}
	for r.ok {
		if len(m) == MaxMetaKeys {
			r.ok = false // more than Validate allows: let ParseEvent say so
			return nil
		}
		k := r.str()
		r.lit(`:`)
		if !r.ok || r.i >= len(r.s) {
			r.ok = false
			return nil
		}
		switch r.s[r.i] {
		case '"':
			m[k] = r.str()
		case 't':
			r.lit("true")
			m[k] = true
		case 'f':
			r.lit("false")
			m[k] = false
		case 'n':
			r.lit("null")
			m[k] = nil
		default:
			j := r.i
			for j < len(r.s) && strings.IndexByte("+-.0123456789eE", r.s[j]) >= 0 {
				j++
			}
			if j == r.i {
				r.ok = false
				return nil
			}
			m[k] = json.Number(r.s[r.i:j])
			r.i = j
		}
		if !r.opt(`,`) {
			r.lit(`}`)
			break
		}
	}
	return m
}
