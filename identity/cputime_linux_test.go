package identity_test

import (
	"runtime"
	"syscall"
	"testing"
)

// rusageThread is RUSAGE_THREAD (Linux): the calling thread's usage.
const rusageThread = 1

// cpuMetric reports "cpu-ns/op", the CPU time the benchmark goroutine's
// thread consumed per operation. On these shared 2-core machines wall-clock
// ns/op varies with other processes' load by a factor of 2-4 between runs,
// while CPU time does not; ratios of cpu-ns/op within one run are the
// numbers to compare. Call it first in a sub-benchmark, before b.Loop.
func cpuMetric(b *testing.B) {
	runtime.LockOSThread()
	start, ok := threadCPU()
	b.Cleanup(func() {
		end, ok2 := threadCPU()
		runtime.UnlockOSThread()
		if ok && ok2 && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	})
}

func threadCPU() (int64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, false
	}
	return ru.Utime.Nano() + ru.Stime.Nano(), true
}
