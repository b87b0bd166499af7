package redis

import (
	"regexp"
	"testing"
)

// The scripts are assembled from snippets with @NAME@ placeholders: none
// may be left unfilled.
func TestScriptsFilled(t *testing.T) {
	left := regexp.MustCompile(`@[A-Z]+@`)
	for name, src := range map[string]string{"reserve": reserveSrc, "charge": chargeSrc, "commit": commitSrc, "release": releaseSrc, "usage": usageSrc} {
		if m := left.FindString(src); m != "" {
			t.Errorf("%s script: placeholder %s left", name, m)
		}
	}
}
