// Package peerbench runs Talos beside the peer libraries users would pick
// for the same job, in one `go test -bench` run, and reports the ratios:
//
//   - policy decisions: capability.Verifier.Authorize on a warm chain
//     against cedar-go and OPA (rego, prepared query);
//   - token verification: capability.Parse + Verify (Ed25519) against
//     gopkg.in/macaroon.v2 (HMAC-SHA256 chain, first-party caveat);
//   - rate limits in memory: budget.Limiter against golang.org/x/time/rate;
//   - rate limits on Redis: budget/redis against go-redis/redis_rate
//     (needs TALOS_TEST_REDIS_URL);
//   - durable append with fsync: audit/file through audit.Log against
//     tessera's POSIX driver, both from many goroutines.
//
// It is its own module (with a replace of the library to ../..) so the
// peers never enter the library's module graph: the root module's
// `go test ./...` does not descend into it. Run it with
//
//	cd internal/peerbench && go test -run '^$' -bench . -benchtime 2s
//
// Each comparison interleaves ours and the peer in one loop and reports
// ours/peer as an x-<peer> metric (below 1 is faster than the peer). The
// tests (go test ./...) check that every side of each comparison does the
// same job (allows the allowed, denies the rest) and run quickly.
package peerbench
