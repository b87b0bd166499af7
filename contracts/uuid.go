package contracts

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// UUIDv7 identifiers (RFC 9562 section 5.7) in their canonical text form:
// 36 characters, lowercase hex, hyphens at 8, 13, 18 and 23, version nibble 7,
// variant bits 10. Every contract schema field that holds a UUIDv7 (event_id,
// principal ids, session ids) demands this lowercase form.

const (
	uuidLen = 36
	// uuidMaxMillis is the largest 48-bit Unix millisecond timestamp.
	uuidMaxMillis = 1<<48 - 1
	// The 74 bits after the timestamp (12 bits rand_a, 62 bits rand_b) are
	// random for the first identifier of a millisecond and then act as a
	// counter. randBMask keeps the 62 bits of rand_b.
	randBMask = 1<<62 - 1
	randAMask = 1<<12 - 1
	// uuidMaxStep bounds the random increment between identifiers generated
	// in the same millisecond: large enough that the next identifier cannot
	// be guessed from the previous one, small enough that about 2^42 of them
	// fit in one millisecond.
	uuidMaxStep = 1 << 32
)

// IsUUIDv7 reports whether s is a UUIDv7 in canonical lowercase text form.
// It is the check every contract field uses; it never panics.
func IsUUIDv7(s string) bool {
	return isUUIDv7(s, false)
}

// IsUUIDv7Fold reports whether s is a UUIDv7 with hex digits in either case.
// Uppercase identifiers are structurally valid (golden.json: isV7 true,
// isCanonicalLower false) but no contract field accepts them; use [IsUUIDv7]
// to validate input and this function only to classify it.
func IsUUIDv7Fold(s string) bool {
	return isUUIDv7(s, true)
}

func isUUIDv7(s string, fold bool) bool {
	if len(s) != uuidLen {
		return false
	}
	for i := 0; i < uuidLen; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
			continue
		case 14:
			if c != '7' {
				return false
			}
			continue
		case 19:
			switch c {
			case '8', '9', 'a', 'b':
				continue
			case 'A', 'B':
				if fold {
					continue
				}
			}
			return false
		}
		if !isHexDigit(c, fold) {
			return false
		}
	}
	return true
}

func isHexDigit(c byte, fold bool) bool {
	switch {
	case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		return true
	case 'A' <= c && c <= 'F':
		return fold
	}
	return false
}

// UUIDv7Time returns the millisecond timestamp embedded in a canonical
// lowercase UUIDv7, in UTC. It returns a TALOS_INVALID_INPUT error when s is
// not one.
func UUIDv7Time(s string) (time.Time, error) {
	if !IsUUIDv7(s) {
		return time.Time{}, New(CodeInvalidInput, "uuid: not a lowercase UUIDv7")
	}
	var ms int64
	for i := 0; i < 13; i++ {
		if i == 8 {
			continue
		}
		ms = ms<<4 | int64(hexVal(s[i]))
	}
	return time.UnixMilli(ms).UTC(), nil
}

func hexVal(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

// A UUIDv7Generator generates UUIDv7 identifiers that are strictly increasing
// (as strings and as bytes) for the generator's lifetime, even when many are
// generated within one millisecond or the clock steps backwards: the first
// identifier of a millisecond has 74 random bits, the following ones add a
// random step of 1 to 2^32 to them (RFC 9562 section 6.2, method 2 with a
// random increment). When the clock is behind the last identifier, the
// generator keeps using the last timestamp.
//
// The random bits come from crypto/rand. A UUIDv7Generator is safe for
// concurrent use by multiple goroutines. The zero value is not usable; call
// [NewUUIDv7Generator].
type UUIDv7Generator struct {
	now func() time.Time

	mu     sync.Mutex // guards ms, randA and randB
	ms     int64
	randA  uint16 // 12 bits
	randB  uint64 // 62 bits
	inited bool
}

// NewUUIDv7Generator returns a generator that reads the time from now. If now
// is nil, time.Now is used.
func NewUUIDv7Generator(now func() time.Time) *UUIDv7Generator {
	if now == nil {
		now = time.Now
	}
	return &UUIDv7Generator{now: now}
}

var defaultUUIDv7 = NewUUIDv7Generator(nil)

// NewUUIDv7 returns a new UUIDv7 in canonical lowercase form from the
// process-wide generator: identifiers returned by one process are strictly
// increasing. It is safe for concurrent use.
func NewUUIDv7() string {
	return defaultUUIDv7.New()
}

// NewUUIDv7At returns a UUIDv7 for the millisecond of t with 74 fresh random
// bits. It does not take part in any generator's monotonic sequence: use it
// for back-filled or test identifiers whose time is given. Times before the
// Unix epoch or after the year 10889 are clamped to the 48-bit range.
func NewUUIDv7At(t time.Time) string {
	var r [10]byte
	rand.Read(r[:])
	randA := binary.BigEndian.Uint16(r[0:2]) & randAMask
	randB := binary.BigEndian.Uint64(r[2:10]) & randBMask
	return formatUUIDv7(clampMillis(t.UnixMilli()), randA, randB)
}

// New returns the next identifier. It never fails: crypto/rand does not
// return errors on supported platforms.
func (g *UUIDv7Generator) New() string {
	ms := clampMillis(g.now().UnixMilli())
	var r [10]byte
	rand.Read(r[:])

	g.mu.Lock()
	if !g.inited || ms > g.ms {
		g.ms = ms
		// Clear the top bit of rand_a so that at least 2^73 steps fit before
		// the counter overflows into the timestamp.
		g.randA = binary.BigEndian.Uint16(r[0:2]) & (randAMask >> 1)
		g.randB = binary.BigEndian.Uint64(r[2:10]) & randBMask
		g.inited = true
	} else {
		g.stepLocked(binary.BigEndian.Uint64(r[2:10])%uuidMaxStep + 1)
	}
	ms, randA, randB := g.ms, g.randA, g.randB
	g.mu.Unlock()

	return formatUUIDv7(ms, randA, randB)
}

// stepLocked adds step to the 74-bit counter; on overflow it moves to the
// next millisecond with a counter of zero. It requires g.mu.
func (g *UUIDv7Generator) stepLocked(step uint64) {
	g.randB += step
	if g.randB <= randBMask {
		return
	}
	g.randB &= randBMask
	g.randA++
	if g.randA <= randAMask {
		return
	}
	g.randA, g.randB = 0, 0
	if g.ms < uuidMaxMillis {
		g.ms++
	}
}

func clampMillis(ms int64) int64 {
	if ms < 0 {
		return 0
	}
	if ms > uuidMaxMillis {
		return uuidMaxMillis
	}
	return ms
}

const hexDigits = "0123456789abcdef"

func formatUUIDv7(ms int64, randA uint16, randB uint64) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(ms)<<16|0x7000|uint64(randA&randAMask))
	binary.BigEndian.PutUint64(b[8:16], 0x8000000000000000|randB&randBMask)
	var s [uuidLen]byte
	j := 0
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j] = hexDigits[c>>4]
		s[j+1] = hexDigits[c&0x0f]
		j += 2
	}
	return string(s[:])
}
