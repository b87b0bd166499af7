package talos_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/talosgo/talos"
)

// FuzzRoutePattern: a pattern NewRouteTable accepts is one the ServeMux
// accepts, Match finds its route by the pattern and by any renaming of its
// wildcards, and nothing panics. Seeds run in every normal test run.
func FuzzRoutePattern(f *testing.F) {
	for _, s := range []string{
		"POST /tools/{id}/run", "/files/{path...}", "GET /{$}", "GET example.com/x/{a}", "POST /x/{", "/{a}/{b}",
		"PUT\t/a/{x}/b/{y...}", "GET /a%2Fb/{c}", "post /x", "", "/", "GET  /x", "/x/{a}{b}", "/x/{a.b}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pattern string) {
		rt, err := talos.NewRouteTable([]talos.Route{{Pattern: pattern, Tool: "t", Action: "a"}})
		if err != nil {
			return
		}
		func() {
			defer func() {
				if recover() != nil {
					t.Fatalf("%q: accepted by the table, refused by the ServeMux", pattern)
				}
			}()
			http.NewServeMux().Handle(pattern, http.NotFoundHandler())
		}()
		if r, ok := rt.Match("", pattern); !ok || r.Pattern != pattern {
			t.Fatalf("%q: Match by its own pattern: %+v %v", pattern, r, ok)
		}
		renamed := renameWildcards(pattern)
		if r, ok := rt.Match("", renamed); !ok || r.Pattern != pattern {
			t.Fatalf("%q: Match by %q: %+v %v", pattern, renamed, r, ok)
		}
	})
}

// renameWildcards gives every wildcard another name, keeping "..." and {$}.
func renameWildcards(p string) string {
	var b strings.Builder
	n := 0
	for {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			b.WriteString(p)
			return b.String()
		}
		j := strings.IndexByte(p[i:], '}')
		if j < 0 {
			b.WriteString(p)
			return b.String()
		}
		name := p[i+1 : i+j]
		b.WriteString(p[:i+1])
		switch {
		case name == "$":
			b.WriteString("$")
		case strings.HasSuffix(name, "..."):
			b.WriteString("r" + strings.Repeat("x", n) + "...")
		default:
			b.WriteString("w" + strings.Repeat("x", n))
		}
		b.WriteByte('}')
		n++
		p = p[i+j+1:]
	}
}
