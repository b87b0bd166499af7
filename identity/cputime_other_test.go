//go:build !linux

package identity_test

import "testing"

// cpuMetric reports CPU time per operation on Linux only.
func cpuMetric(*testing.B) {}
