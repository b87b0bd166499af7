package testenv_test

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/talosgo/talos/internal/testenv"
)

// The checker lets declared keys through and stops an undeclared one, an
// unknown command, and the same through pcall and after a shebang line.
func TestCheckDeclaredKeys(t *testing.T) {
	u, real := testenv.Redis(t)
	if !real {
		t.Skip("needs TALOS_TEST_REDIS_URL (miniredis's Lua differs)")
	}
	c := redis.NewClient(u.(*redis.Client).Options())
	t.Cleanup(func() { c.Close() })
	testenv.CheckDeclaredKeys(c)
	p := testenv.Unique(t) + ":"
	ctx := t.Context()
	ok := redis.NewScript(`redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000) redis.call('MGET', KEYS[1], KEYS[2]) return redis.call('GET', KEYS[1])`)
	if v, err := ok.Run(ctx, c, []string{p + "a", p + "b"}, "v").Text(); err != nil || v != "v" {
		t.Fatalf("declared keys: %q %v", v, err)
	}
	for name, src := range map[string]string{
		"undeclared":  `return redis.call('GET', KEYS[1] .. 'x')`,
		"mget":        `return redis.call('MGET', KEYS[1], 'other')`,
		"pcall":       `return redis.pcall('DEL', 'other')`,
		"unknown cmd": `return redis.call('BITCOUNT', KEYS[1])`,
		"shebang":     "#!lua\nreturn redis.call('GET', 'other')",
	} {
		err := redis.NewScript(src).Run(ctx, c, []string{p + "a"}).Err()
		if err == nil || !strings.Contains(err.Error(), "keycheck:") {
			t.Errorf("%s: got %v, want a keycheck error", name, err)
		}
	}
}
