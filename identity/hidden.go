package identity

// hidden holds a pointer to secret state behind a second indirection.
//
// fmt prints the fields of a struct value without calling their methods
// when they are unexported, and for a verb that does not fit a pointer (%s,
// %q, ...) it re-prints the pointer at depth 0, which dereferences one
// level. A plain *T field holding a key could therefore be printed, bytes
// and all, by fmt.Sprintf("%s", someStructHoldingAWalletValue). A **T is
// printed as an address by every verb.
type hidden[T any] struct{ p **T }

func hide[T any](v *T) hidden[T] { return hidden[T]{p: &v} }

func (h hidden[T]) get() *T { return *h.p }
