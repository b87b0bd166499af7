package oauth_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/oauth"
	"github.com/talosgo/talos/gateway/oauth/oauthtest"
)

// FuzzVerify feeds arbitrary tokens to the token parser path: nothing
// panics, every refusal is a contract error, and whatever verifies has
// the configured issuer and audience.
func FuzzVerify(f *testing.F) {
	as := oauthtest.New(f)
	v, err := oauth.NewVerifier(oauth.Config{Issuer: as.Issuer, Resource: resource})
	if err != nil {
		f.Fatal(err)
	}
	for _, kid := range []string{oauthtest.KeyRSA, oauthtest.KeyEC, oauthtest.KeyEd25519} {
		tok := as.Sign(f, kid, good())
		f.Add(tok)
		f.Add(tok[:len(tok)-4] + "AAAA")
		h, p, _ := strings.Cut(tok, ".")
		f.Add(h + "." + p)
	}
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(context.Background(), tok)
		if err != nil {
			switch contracts.CodeOf(err) {
			case contracts.CodeAuthInvalid, contracts.CodeAuthExpired, contracts.CodeInternal:
			default:
				t.Fatalf("error of code %s: %v", contracts.CodeOf(err), err)
			}
			return
		}
		if c.Issuer != as.Issuer || !slices.Contains(c.Audience, resource) || c.Subject == "" || c.Expiry.IsZero() {
			t.Fatalf("verified claims %+v", c)
		}
	})
}
