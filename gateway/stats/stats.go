package stats

import (
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/internal/httpx"
)

// Outcomes of a decision, the keys of Decisions.ByOutcome.
const (
	OutcomeSuccess = "success"
	OutcomeDenied  = "denied"
	OutcomeError   = "error"
)

// Scopes of the statistics.
const (
	// ScopeReplica: the counts are this process's decisions.
	ScopeReplica = "replica"
	// ScopeCluster: the counts are every replica's.
	ScopeCluster = "cluster"
)

// Window limits of [Recorder.Stats] and GET /v1/admin/stats.
const (
	MinWindow     = time.Minute
	MaxWindow     = 24 * time.Hour
	DefaultWindow = 15 * time.Minute
)

// OtherKey counts the surfaces and reasons beyond Config.MaxKeys in one
// minute.
const OtherKey = "other"

// Config configures a [Recorder].
type Config struct {
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Retention is how far back statistics are kept, rounded up to whole
	// minutes; windows longer than it are refused. Zero means MaxWindow
	// (24 h).
	Retention time.Duration
	// MaxKeys bounds the distinct surfaces and the distinct reasons kept
	// per minute; the rest count under OtherKey. Zero means 64.
	MaxKeys int
	// Scope is reported in every response. "" means ScopeReplica, the
	// truth for a Recorder fed by this process's Kernels.
	Scope string
}

// A Decision is one decision to record.
type Decision struct {
	// At is when it was made. Zero means now.
	At time.Time
	// Surface is the call's SurfaceID.
	Surface string
	// Outcome is OutcomeSuccess, OutcomeDenied or OutcomeError (anything
	// else counts as an error).
	Outcome string
	// Reason is the capability decision's reason (ALLOWED, SCOPE_MISMATCH,
	// ...), or, when the decision admitted the call and a later stage
	// refused or failed it, that stage's contract error code
	// (RATE_LIMITED, BUDGET_EXCEEDED, INTERNAL).
	Reason string
}

// Recorder keeps decision statistics in bounded memory. It is safe for
// concurrent use.
type Recorder struct {
	now     func() time.Time
	maxKeys int
	scope   string

	mu   sync.Mutex
	ring []bucket
}

// New returns an empty Recorder.
func New(cfg Config) *Recorder {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Retention <= 0 {
		cfg.Retention = MaxWindow
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 64
	}
	if cfg.Scope == "" {
		cfg.Scope = ScopeReplica
	}
	n := int((cfg.Retention + time.Minute - 1) / time.Minute)
	return &Recorder{now: cfg.Now, maxKeys: cfg.MaxKeys, scope: cfg.Scope, ring: make([]bucket, n)}
}

// bucket is one minute of statistics.
type bucket struct {
	minute       int64 // Unix minute; the bucket is empty unless it matches
	total        uint64
	outcomes     [3]uint64
	surfaces     map[string]uint64
	reasons      map[string]uint64
	rateLimited  uint64
	budgetDenied uint64
	call, auth   *histogram
}

// at returns the bucket of time t, reset if it held an older minute. It
// returns nil for a time outside the ring (older than Retention, or in the
// future). Called with mu held.
func (r *Recorder) at(t time.Time) *bucket {
	m := unixMinute(t)
	now := unixMinute(r.now())
	if m > now || now-m >= int64(len(r.ring)) {
		return nil
	}
	b := &r.ring[m%int64(len(r.ring))]
	if b.minute != m {
		*b = bucket{minute: m}
	}
	return b
}

func unixMinute(t time.Time) int64 {
	s := t.Unix()
	if s < 0 {
		return (s - 59) / 60
	}
	return s / 60
}

func (r *Recorder) when(t time.Time) time.Time {
	if t.IsZero() {
		return r.now()
	}
	return t
}

// count adds one to m[k], keeping at most maxKeys keys.
func (r *Recorder) count(m *map[string]uint64, k string) {
	if *m == nil {
		*m = map[string]uint64{}
	}
	if _, ok := (*m)[k]; !ok && len(*m) >= r.maxKeys {
		k = OtherKey
	}
	(*m)[k]++
}

// RecordDecision counts d.
func (r *Recorder) RecordDecision(d Decision) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.at(r.when(d.At))
	if b == nil {
		return
	}
	b.total++
	switch d.Outcome {
	case OutcomeSuccess:
		b.outcomes[0]++
	case OutcomeDenied:
		b.outcomes[1]++
	default:
		b.outcomes[2]++
	}
	r.count(&b.surfaces, clip(d.Surface))
	if d.Reason != "" {
		r.count(&b.reasons, clip(d.Reason))
	}
}

// Latency kinds of [Recorder.RecordLatency].
const (
	// LatencyCall is a whole decision pipeline's latency.
	LatencyCall = "call"
	// LatencyAuthorize is the authorize stage's latency.
	LatencyAuthorize = "authorize"
)

// RecordLatency records one latency of kind (LatencyCall or
// LatencyAuthorize) at time at (zero: now).
func (r *Recorder) RecordLatency(kind string, at time.Time, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.at(r.when(at))
	if b == nil {
		return
	}
	h := &b.call
	if kind == LatencyAuthorize {
		h = &b.auth
	}
	if *h == nil {
		*h = new(histogram)
	}
	(*h).add(d)
}

// RecordRateLimitDenial counts a call refused by a rate limiter.
func (r *Recorder) RecordRateLimitDenial(at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.at(r.when(at)); b != nil {
		b.rateLimited++
	}
}

// RecordBudgetDenial counts a budget reservation refused.
func (r *Recorder) RecordBudgetDenial(at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.at(r.when(at)); b != nil {
		b.budgetDenied++
	}
}

// clip bounds a key's length (the Kernel's attributes are bounded too).
func clip(s string) string {
	if len(s) > 128 {
		s = s[:128]
	}
	if s == "" {
		return "unknown"
	}
	return s
}

// Stats is the body of GET /v1/admin/stats.
type Stats struct {
	WindowSeconds int64 `json:"window_seconds"`
	// From is the start of the window's first minute, To the time of the
	// snapshot.
	From      string    `json:"from"`
	To        string    `json:"to"`
	Decisions Decisions `json:"decisions"`
	// LatencyMS are the percentiles of the whole decision pipeline
	// (authorize, rate limit, budget, the call, the audit append).
	LatencyMS Percentiles `json:"latency_ms"`
	// AuthorizeLatencyMS are the percentiles of the authorize stage alone.
	AuthorizeLatencyMS Percentiles `json:"authorize_latency_ms"`
	PerMinute          []Minute    `json:"per_minute"`
	RateLimitDenials   uint64      `json:"rate_limit_denials"`
	BudgetDenials      uint64      `json:"budget_denials"`
	Scope              string      `json:"scope"`
}

// Decisions are the counts of a window.
type Decisions struct {
	Total     uint64            `json:"total"`
	ByOutcome map[string]uint64 `json:"by_outcome"`
	BySurface map[string]uint64 `json:"by_surface"`
	ByReason  map[string]uint64 `json:"by_reason"`
}

// Percentiles of a latency, in milliseconds; zero without samples
// (Count says how many there were).
type Percentiles struct {
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Count uint64  `json:"count"`
}

// Minute is one point of the per-minute series.
type Minute struct {
	Minute string `json:"minute"`
	Total  uint64 `json:"total"`
	Denied uint64 `json:"denied"`
}

// Stats returns the statistics of the last window, rounded up to whole
// minutes (the current minute included). A window outside MinWindow ..
// min(MaxWindow, Retention) is TALOS_INVALID_INPUT.
func (r *Recorder) Stats(window time.Duration) (Stats, error) {
	n := int64((window + time.Minute - 1) / time.Minute)
	if window < MinWindow || window > MaxWindow || n > int64(len(r.ring)) {
		return Stats{}, contracts.New(contracts.CodeInvalidInput, "window must be 1m to 24h (and within the retention)")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	last := unixMinute(now)
	first := last - n + 1
	s := Stats{
		WindowSeconds: n * 60,
		From:          time.Unix(first*60, 0).UTC().Format(time.RFC3339),
		To:            now.UTC().Format(time.RFC3339),
		Decisions: Decisions{
			ByOutcome: map[string]uint64{OutcomeSuccess: 0, OutcomeDenied: 0, OutcomeError: 0},
			BySurface: map[string]uint64{}, ByReason: map[string]uint64{},
		},
		PerMinute: make([]Minute, 0, n),
		Scope:     r.scope,
	}
	var call, auth histogram
	for m := first; m <= last; m++ {
		pm := Minute{Minute: time.Unix(m*60, 0).UTC().Format(time.RFC3339)}
		b := &r.ring[m%int64(len(r.ring))]
		if b.minute == m {
			pm.Total, pm.Denied = b.total, b.outcomes[1]
			s.Decisions.Total += b.total
			s.Decisions.ByOutcome[OutcomeSuccess] += b.outcomes[0]
			s.Decisions.ByOutcome[OutcomeDenied] += b.outcomes[1]
			s.Decisions.ByOutcome[OutcomeError] += b.outcomes[2]
			for k, v := range b.surfaces {
				s.Decisions.BySurface[k] += v
			}
			for k, v := range b.reasons {
				s.Decisions.ByReason[k] += v
			}
			s.RateLimitDenials += b.rateLimited
			s.BudgetDenials += b.budgetDenied
			call.merge(b.call)
			auth.merge(b.auth)
		}
		s.PerMinute = append(s.PerMinute, pm)
	}
	s.LatencyMS, s.AuthorizeLatencyMS = call.percentiles(), auth.percentiles()
	return s, nil
}

// histogram is a fixed logarithmic latency histogram: 16 buckets per
// decade from 1 µs (bucket 0 holds everything below) to 1000 s (the last
// holds everything above).
type histogram struct {
	n      uint64
	counts [histBuckets]uint32
}

const (
	histPerDecade = 16
	histBuckets   = 9 * histPerDecade // 1 µs .. 1000 s
)

func (h *histogram) add(d time.Duration) {
	us := float64(d) / float64(time.Microsecond)
	i := 0
	if us > 1 {
		i = int(math.Log10(us) * histPerDecade)
	}
	i = min(max(i, 0), histBuckets-1)
	if h.counts[i] == math.MaxUint32 {
		return // saturated: 4e9 samples in one minute
	}
	h.counts[i]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	if o == nil {
		return
	}
	h.n += o.n
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

// quantile returns the q-quantile (nearest rank) in milliseconds: the
// geometric middle of its bucket.
func (h *histogram) quantile(q float64) float64 {
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			us := math.Pow(10, (float64(i)+0.5)/histPerDecade)
			return math.Round(us) / 1000 // µs precision
		}
	}
	return 0
}

func (h *histogram) percentiles() Percentiles {
	if h.n == 0 {
		return Percentiles{}
	}
	return Percentiles{P50: h.quantile(0.50), P95: h.quantile(0.95), P99: h.quantile(0.99), Count: h.n}
}

// Pattern is the route of the statistics.
const Pattern = "GET /v1/admin/stats"

// Register mounts GET /v1/admin/stats?window= on mux behind authorize (the
// admin.stats read grant). A nil authorize refuses every request.
func (r *Recorder) Register(mux *http.ServeMux, authorize func(http.HandlerFunc) http.HandlerFunc) {
	if authorize == nil {
		authorize = func(http.HandlerFunc) http.HandlerFunc {
			return func(w http.ResponseWriter, req *http.Request) {
				talos.WriteError(w, req, contracts.New(contracts.CodeAuthInvalid, "admin credential required"))
			}
		}
	}
	mux.HandleFunc(Pattern, authorize(r.ServeHTTP))
}

// ServeHTTP answers GET /v1/admin/stats?window= (a Go duration, 1m..24h,
// default 15m) with [Stats] as JSON.
func (r *Recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	window, err := parseWindow(req)
	if err != nil {
		talos.WriteError(w, req, err)
		return
	}
	s, err := r.Stats(window)
	if err != nil {
		talos.WriteError(w, req, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, s)
}

func parseWindow(req *http.Request) (time.Duration, error) {
	q := req.URL.Query()
	for k, vs := range q {
		if k != "window" || len(vs) != 1 {
			return 0, contracts.New(contracts.CodeInvalidInput, "the only query parameter is one window")
		}
	}
	v := q.Get("window")
	if v == "" {
		return DefaultWindow, nil
	}
	if len(v) > 16 || strings.ContainsAny(v, "+-") {
		return 0, contracts.New(contracts.CodeInvalidInput, "window must be a duration like 15m, 1m to 24h")
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < MinWindow || d > MaxWindow {
		return 0, contracts.New(contracts.CodeInvalidInput, "window must be a duration like 15m, 1m to 24h")
	}
	return d, nil
}
