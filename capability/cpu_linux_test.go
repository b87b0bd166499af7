//go:build linux

package capability

import "syscall"

// threadCPU returns the CPU time consumed by the calling OS thread, or -1.
func threadCPU() int64 { return rusage(syscall.RUSAGE_THREAD) }

// processCPU returns the CPU time consumed by the process, or -1.
func processCPU() int64 { return rusage(syscall.RUSAGE_SELF) }

func rusage(who int) int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(who, &ru) != nil {
		return -1
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
