package capability

import (
	"log/slog"
	"strings"
	"time"
)

// LogValue implements slog.LogValuer: the capability hash, issuer, subject,
// expiry and grants, never the signature or the encoded token (which its
// subject could present).
func (t *Token) LogValue() slog.Value {
	grants := make([]string, 0, len(t.grants))
	for _, g := range t.grants {
		grants = append(grants, g.Tool+":"+strings.Join(g.Actions, ","))
	}
	return slog.GroupValue(
		slog.String("capability_hash", t.hashHex), slog.String("issuer", t.issuerStr),
		slog.String("subject", t.subjectStr), slog.Time("exp", time.Unix(t.exp, 0).UTC()),
		slog.String("grants", strings.Join(grants, " ")), slog.Bool("read_only", t.readOnly))
}
