package config

import (
	"context"
	"errors"
	"net/http"
	"net/netip"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
)

// DefaultAuditSurface is the audit surface of config changes.
const DefaultAuditSurface = "config"

// AuditMetaKeys returns the meta keys [AuditHook] records: add them to the
// surface's allowlist in the audit.EventBuilder's BuilderConfig.
func AuditMetaKeys() []string {
	return []string{"config_kind", "config_name", "config_version", "config_digest", "config_previous_digest"}
}

// AuditHookConfig configures [AuditHook].
type AuditHookConfig struct {
	// Log receives the events. Required.
	Log interface {
		Append(ctx context.Context, e audit.Event) (audit.Receipt, error)
	}
	// Events builds them; its allowlist for Surface must admit
	// AuditMetaKeys. Required.
	Events *audit.EventBuilder
	// Surface is the events' surface id. "" means DefaultAuditSurface.
	Surface string
	// Principal maps a change to the event's principal. Nil records
	// audit.BearerPrincipal(c.Principal, "") (anonymous when "").
	Principal func(c Change) audit.Principal
}

// AuditHook returns a Config.OnChange hook that records every new version
// in the audit log, before it becomes visible: an event on the surface with
// method PUT, template path /v1/config/{kind}/{name}, status 200, and meta
// config_kind, config_name, config_version, config_digest and (after version
// 1) config_previous_digest. If the log cannot record it, the hook fails and
// the Service stores nothing.
func AuditHook(cfg AuditHookConfig) (func(ctx context.Context, c Change) error, error) {
	if cfg.Log == nil || cfg.Events == nil {
		return nil, errors.New("config: AuditHookConfig needs Log and Events")
	}
	surface := cfg.Surface
	if surface == "" {
		surface = DefaultAuditSurface
	}
	principal := cfg.Principal
	if principal == nil {
		principal = func(c Change) audit.Principal {
			if c.Principal == "" {
				return audit.AnonymousPrincipal()
			}
			return audit.BearerPrincipal(c.Principal, "")
		}
	}
	return func(ctx context.Context, c Change) error {
		meta := map[string]any{
			"config_kind": c.Kind, "config_name": c.Name, "config_version": c.Version, "config_digest": c.Digest,
		}
		if c.PreviousDigest != "" {
			meta["config_previous_digest"] = c.PreviousDigest
		}
		ev := cfg.Events.DraftEvent(http.MethodPut, netip.Addr{}, audit.Decision{
			RequestID:    contracts.NewUUIDv7(),
			SurfaceID:    surface,
			TemplatePath: "/v1/config/{kind}/{name}",
			Status:       http.StatusOK,
			Principal:    principal(c),
			Meta:         meta,
			Time:         c.Time,
		})
		_, err := cfg.Log.Append(ctx, ev) // validates and seals the draft
		return err
	}, nil
}
