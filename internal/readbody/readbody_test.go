package readbody

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestRead(t *testing.T) {
	body := strings.Repeat("x", 1000)
	for _, tc := range []struct {
		name        string
		limit, hint int64
		want        int
	}{
		{"declared length", 4096, 1000, 1000},
		{"unknown length", 4096, -1, 1000},
		{"declared too short", 4096, 10, 1000},
		{"declared too long", 4096, 3000, 1000},
		{"declared beyond the limit", 100, 1000, 101},
		{"unknown beyond the limit", 100, -1, 101},
		{"exactly the limit", 1000, 1000, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Read(iotest.HalfReader(strings.NewReader(body)), tc.limit, tc.hint)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want || !bytes.Equal(got, []byte(body[:tc.want])) {
				t.Fatalf("read %d bytes, want the first %d", len(got), tc.want)
			}
		})
	}
	if got, err := Read(strings.NewReader(""), 10, 0); err != nil || len(got) != 0 {
		t.Fatalf("empty body: %q, %v", got, err)
	}
	boom := errors.New("boom")
	if _, err := Read(io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(boom)), 10, 2); !errors.Is(err, boom) {
		t.Fatalf("read error lost: %v", err)
	}
}

func TestReadAllocs(t *testing.T) {
	body := []byte(strings.Repeat("x", 700))
	r := bytes.NewReader(body)
	n := testing.AllocsPerRun(100, func() {
		r.Reset(body)
		if b, err := Read(r, 1<<20, int64(len(body))); err != nil || len(b) != len(body) {
			t.Fatal(len(b), err)
		}
	})
	if n > 1 {
		t.Fatalf("%v allocations for a body of its declared length, want 1", n)
	}
}

// A declared length beyond maxPrealloc does not allocate it up front: the
// buffer grows as the bytes arrive.
func TestReadDeclaredLarge(t *testing.T) {
	got, err := Read(strings.NewReader("ab"), 1<<30, 1<<30)
	if err != nil || string(got) != "ab" || cap(got) > maxPrealloc {
		t.Fatalf("%q, cap %d, %v", got, cap(got), err)
	}
	big := strings.Repeat("y", 3*maxPrealloc)
	got, err = Read(strings.NewReader(big), 1<<30, int64(len(big)))
	if err != nil || string(got) != big {
		t.Fatalf("large body: %d bytes, %v", len(got), err)
	}
}
