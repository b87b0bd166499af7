package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
	"github.com/talosgo/talos/internal/testenv"
	"golang.org/x/mod/sumdb/note"
)

func TestFormatRedactsKeys(t *testing.T) {
	hmacKey := []byte("hmac-secret-0123456789abcdefghij")
	ipKey := []byte("ip-hash-secret-0123456789ABCDEFG")
	wkey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0xA7}, 32))
	lkey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x5C}, 32))

	rcfg := audit.RedactionConfig{
		Rules:   []audit.RedactionRule{{Field: "meta.email", Action: audit.HMAC}},
		HMACKey: hmacKey, HMACKeyID: "k1",
	}
	red, err := audit.NewRedactor(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	bcfg := audit.BuilderConfig{IPHashKey: ipKey, IPHashKeyID: "ip1", MetaAllowlist: map[string][]string{"llm.invoke": {"model"}}}
	eb, err := audit.NewEventBuilder(bcfg)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := audit.NewNoteSigner(audittest.Origin, lkey)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := audit.NewCosigner("witness.example/w2", wkey, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := audit.NewVerifier(audittest.Origin, lkey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	wcfg := audit.WitnessConfig{Name: "witness.example/w2", Signer: wkey, Logs: []note.Verifier{v}}
	wit, err := audit.NewWitness(wcfg)
	if err != nil {
		t.Fatal(err)
	}
	lcfg := audit.Config{Store: audit.NewMemStore(), Signer: ns, Verifier: v, Redactor: red}
	lg, err := audit.New(context.Background(), lcfg)
	if err != nil {
		t.Fatal(err)
	}

	signerKeys := [][]byte{lkey, lkey.Seed()}
	witnessKeys := [][]byte{wkey, wkey.Seed()}
	cases := []struct {
		name    string
		v       any
		secrets [][]byte
	}{
		{"Redactor", red, [][]byte{hmacKey}},
		{"RedactionConfig", rcfg, [][]byte{hmacKey}},
		{"*RedactionConfig", &rcfg, [][]byte{hmacKey}},
		{"EventBuilder", eb, [][]byte{ipKey}},
		{"BuilderConfig", bcfg, [][]byte{ipKey}},
		{"*BuilderConfig", &bcfg, [][]byte{ipKey}},
		{"NoteSigner", ns, signerKeys},
		{"Cosigner", cs, witnessKeys},
		{"WitnessConfig", wcfg, witnessKeys},
		{"Witness", wit, witnessKeys},
		{"Config", lcfg, append(signerKeys, hmacKey)},
		{"Log", lg, append(signerKeys, hmacKey)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for how, text := range testenv.Renderings(tc.v, false) {
				for _, k := range tc.secrets {
					for _, form := range testenv.LeakForms(k) {
						if strings.Contains(text, form) {
							t.Fatalf("%s output contains key material %q:\n%s", how, form, text)
						}
					}
				}
			}
		})
	}

	// The detector finds the key when it is printed: the test above can fail.
	for _, verb := range []string{"%v", "%x", "%s", "%d"} {
		text := fmt.Sprintf(verb, struct{ K []byte }{hmacKey})
		found := false
		for _, form := range testenv.LeakForms(hmacKey) {
			found = found || strings.Contains(text, form)
		}
		if !found {
			t.Errorf("detector misses the key in %s output %q", verb, text)
		}
	}
}

func TestFormatConfigJSONRedacts(t *testing.T) {
	b, err := json.Marshal(audit.RedactionConfig{HMACKey: []byte("k"), HMACKeyID: "id"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"Rules":null,"HMACKey":"[redacted]","HMACKeyID":"id","Markers":0}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	b, err = json.Marshal(audit.BuilderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"Markers":0,"RawPathUnsafe":false}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
}
