package budget

import (
	"strconv"
	"time"
)

// PeriodKind is the kind of a Period.
type PeriodKind uint8

const (
	// KindMonthly periods start at local midnight on the first of the month.
	KindMonthly PeriodKind = iota
	// KindDaily periods start at local midnight.
	KindDaily
	// KindRolling windows cover the last Window of time, in RollingBuckets
	// steps.
	KindRolling
	// KindLifetime never resets.
	KindLifetime
)

// A Period is a budget's accounting period. Calendar periods (daily,
// monthly) are aligned to midnight in the back-end's configured
// time.Location. The zero value is Monthly(), the contract default.
// Periods are comparable.
type Period struct {
	kind   PeriodKind
	window time.Duration
}

// Monthly returns the calendar-month period.
func Monthly() Period { return Period{kind: KindMonthly} }

// Daily returns the calendar-day period.
func Daily() Period { return Period{kind: KindDaily} }

// Lifetime returns a period that never resets.
func Lifetime() Period { return Period{kind: KindLifetime} }

// Rolling returns a sliding window of length w (MinWindow to MaxWindow).
// Spend ages out one bucket of w/RollingBuckets at a time, so the window is
// at most one bucket shorter than w.
func Rolling(w time.Duration) Period { return Period{kind: KindRolling, window: w} }

// Kind returns the period's kind.
func (p Period) Kind() PeriodKind { return p.kind }

// Window returns the length of a rolling window, or zero.
func (p Period) Window() time.Duration { return p.window }

// BucketMicros returns the width of one rolling-window bucket in
// microseconds, or zero for other kinds.
func (p Period) BucketMicros() int64 {
	if p.kind != KindRolling {
		return 0
	}
	return p.window.Microseconds() / RollingBuckets
}

// String returns "monthly", "daily", "lifetime" or "rolling:<duration>".
func (p Period) String() string {
	switch p.kind {
	case KindMonthly:
		return "monthly"
	case KindDaily:
		return "daily"
	case KindLifetime:
		return "lifetime"
	case KindRolling:
		return "rolling:" + p.window.String()
	}
	return "Period(" + strconv.Itoa(int(p.kind)) + ")"
}

func (p Period) validate() error {
	switch p.kind {
	case KindMonthly, KindDaily, KindLifetime:
		if p.window != 0 {
			return invalid("calendar periods have no window")
		}
		return nil
	case KindRolling:
		if p.window < MinWindow || p.window > MaxWindow {
			return invalid("rolling window out of range")
		}
		return nil
	}
	return invalid("unknown period kind")
}

// Bounds returns the calendar period containing now, in loc: [start, end).
// ok is false for rolling and lifetime periods.
func (p Period) Bounds(loc *time.Location, now time.Time) (start, end time.Time, ok bool) {
	if loc == nil {
		loc = time.UTC
	}
	t := now.In(loc)
	switch p.kind {
	case KindDaily:
		start = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
		end = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
	case KindMonthly:
		start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, loc)
		end = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, loc)
	default:
		return time.Time{}, time.Time{}, false
	}
	return start, end, true
}

// CalendarBounds returns four consecutive period boundaries in Unix
// microseconds: the start of the previous period, of the current one, of
// the next one and of the one after. A back-end whose clock is not the
// caller's (Redis TIME) picks the period containing its own time from them,
// tolerating up to one period of skew. ok is false for non-calendar kinds.
func (p Period) CalendarBounds(loc *time.Location, now time.Time) (b [4]int64, ok bool) {
	start, end, ok := p.Bounds(loc, now)
	if !ok {
		return b, false
	}
	prev, _, _ := p.Bounds(loc, start.Add(-time.Nanosecond))
	_, after, _ := p.Bounds(loc, end)
	return [4]int64{prev.UnixMicro(), start.UnixMicro(), end.UnixMicro(), after.UnixMicro()}, true
}
