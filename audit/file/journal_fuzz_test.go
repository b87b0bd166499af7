package file

import (
	"bytes"
	"testing"
)

// FuzzReadJournal: the journal parser never panics, and what it accepts is
// exactly a prefix of its input: the header and whole frames re-encoded
// byte for byte.
func FuzzReadJournal(f *testing.F) {
	j := journalHeader(256)
	j = append(j, frame([][]byte{[]byte("a"), []byte("bc")})...)
	j = append(j, frame([][]byte{[]byte("d")})...)
	f.Add(j)
	f.Add(j[:len(j)-3])
	f.Add(append(append([]byte(nil), j...), make([]byte, 64)...)) // zeros ahead of the frames
	f.Fuzz(func(t *testing.T, data []byte) {
		base, entries, end, err := readJournal(data)
		if err != nil {
			return
		}
		if end > int64(len(data)) || base%tileWidth != 0 {
			t.Fatalf("end %d beyond %d or base %d", end, len(data), base)
		}
		// Re-encode frame by frame: the accepted bytes are the same.
		got := journalHeader(base)
		rest := data[journalHeaderSize:end]
		for len(rest) > 0 {
			n := int(rest[0])<<24 | int(rest[1])<<16 | int(rest[2])<<8 | int(rest[3])
			got = append(got, rest[:8+n]...)
			rest = rest[8+n:]
		}
		if !bytes.Equal(got, data[:end]) {
			t.Fatal("accepted bytes are not a header and whole frames")
		}
		total := 0
		for _, e := range entries {
			total += len(e)
		}
		if total > len(data) {
			t.Fatal("entries larger than the input")
		}
	})
}

// Zeros read as empty frames wherever they are: ahead of the frames (the
// preallocated space) they are not part of the journal, and frames that an
// earlier version appended after them (it read the zeros as empty frames
// and appended at the end) are read.
func TestReadJournalZeros(t *testing.T) {
	j := journalHeader(256)
	j = append(j, frame([][]byte{[]byte("a")})...)
	wantEnd := len(j)
	tail := append(append([]byte(nil), j...), make([]byte, 64+5)...)
	_, entries, end, err := readJournal(tail)
	if err != nil || len(entries) != 1 || end != int64(wantEnd) {
		t.Fatalf("zeros ahead of the frames: %d entries, end %d (want %d), %v", len(entries), end, wantEnd, err)
	}
	if !allZero(tail[end:]) || allZero(j) {
		t.Fatal("allZero")
	}
	mid := append(append([]byte(nil), j...), make([]byte, 64)...)
	mid = append(mid, frame([][]byte{[]byte("b"), []byte("c")})...)
	_, entries, end, err = readJournal(mid)
	if err != nil || len(entries) != 3 || end != int64(len(mid)) {
		t.Fatalf("frames after zeros: %d entries, end %d of %d, %v", len(entries), end, len(mid), err)
	}
	torn := append(append([]byte(nil), j...), 0, 0, 1, 0, 9, 9, 9, 9, 'x')
	torn = append(torn, make([]byte, 32)...)
	if _, entries, end, _ = readJournal(torn); len(entries) != 1 || end != int64(wantEnd) || allZero(torn[end:]) {
		t.Fatalf("torn frame in the zeros: %d entries, end %d", len(entries), end)
	}
}
