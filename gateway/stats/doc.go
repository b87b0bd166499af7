// Package stats keeps decision statistics of a Talos service over a
// sliding window and serves them at GET /v1/admin/stats: decisions by
// outcome, surface and reason, latency percentiles, a per-minute series,
// and rate-limit and budget denials.
//
// # Source and scope
//
// A [Recorder] is fed by the Kernels of the process: wrap the meter given
// to talos.KernelConfig.Meter with [Recorder.Meter], and the Recorder sees
// every measurement the Kernel records (talos.decisions,
// talos.call.duration, talos.authorize.duration, talos.ratelimit.denials,
// talos.budget.reservations) while the measurements still reach the
// wrapped meter unchanged. Code that decides without a Kernel calls
// [Recorder.RecordDecision] and [Recorder.RecordLatency] itself.
//
// The counts are therefore this replica's: the response says
// "scope": "replica" (Config.Scope). The audit log, shared by the replicas,
// remains the cluster-wide record (GET /v1/audit/events and the live
// stream).
//
// # Bounded memory
//
// The Recorder keeps a ring of per-minute buckets covering
// Config.Retention (24 h by default, the longest window served); each
// bucket holds counters, at most Config.MaxKeys surfaces and reasons (more
// are counted under "other"), and two fixed-size logarithmic latency
// histograms (16 buckets per decade from 1 µs to 1000 s, allocated on first
// use), so a percentile is exact to within about 7.5 % of its value. Memory
// does not grow with traffic.
//
// # Security properties
//
// The statistics name surfaces, decision reasons and error codes only:
// never principals, tokens, capability hashes or request bodies (the
// Kernel's metric attributes have none). GET /v1/admin/stats is mounted
// behind the caller's authorization (the admin.stats read grant); without
// one, every request is refused.
package stats
