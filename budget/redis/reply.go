package redis

import (
	"strconv"

	"github.com/talosgo/talos/contracts"
)

// errReply reports a script reply of an unexpected shape. It never panics
// and carries no reply contents.
func errReply(what string) error {
	return contracts.New(contracts.CodeTransportError, "budget/redis: malformed "+what+" reply").WithRetryable(true)
}

// reply is a script reply array, read with checked type assertions.
type reply struct {
	v    []any
	what string
	err  error
}

func newReply(v any, what string, minLen int) *reply {
	a, ok := v.([]any)
	r := &reply{v: a, what: what}
	if !ok || len(a) < minLen || len(a) > maxReplyLen {
		r.err = errReply(what)
	}
	return r
}

// maxReplyLen bounds the replies the decoders accept: the longest is a
// commit with budget.MaxScopes scopes.
const maxReplyLen = 16 + 3*16

func (r *reply) int(i int) int64 {
	if r.err != nil {
		return 0
	}
	if i >= len(r.v) {
		r.err = errReply(r.what)
		return 0
	}
	switch x := r.v[i].(type) {
	case int64:
		return x
	case string: // some proxies return numbers as bulk strings
		n, err := strconv.ParseInt(x, 10, 64)
		if err == nil {
			return n
		}
	}
	r.err = errReply(r.what)
	return 0
}

// intIn reads an integer that must lie in [lo, hi].
func (r *reply) intIn(i int, lo, hi int64) int64 {
	n := r.int(i)
	if r.err == nil && (n < lo || n > hi) {
		r.err = errReply(r.what)
		return 0
	}
	return n
}

func (r *reply) str(i int) string {
	if r.err != nil {
		return ""
	}
	if i >= len(r.v) {
		r.err = errReply(r.what)
		return ""
	}
	switch x := r.v[i].(type) {
	case string:
		return x
	case nil:
		return ""
	}
	r.err = errReply(r.what)
	return ""
}
