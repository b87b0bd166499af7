//go:build !linux

package audit_test

// processCPU is unavailable here; benchmarks then report no cpu-ns/op.
func processCPU() int64 { return -1 }
