//go:build !linux

package testenv

import "os/exec"

// dieWithParent does nothing outside Linux: nodes are killed by the
// test's cleanup only.
func dieWithParent(*exec.Cmd) {}
