package main

import (
	"context"
	"net/http"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
)

// opConfig is the audit surface of configuration changes.
const opConfig = "config"

// auditConfigChange is the config service's OnChange hook: every new
// version of a budget or policy document is recorded in the audit log, with
// its JCS digest and the previous version's, before it becomes visible. If
// the log cannot record it, the config service stores nothing.
func (c *core) auditConfigChange(ctx context.Context, ch ConfigChange) error {
	r, err := http.NewRequestWithContext(ctx, http.MethodPut, "/v1/config/"+ch.Kind+"/"+ch.Name, nil)
	if err != nil {
		return err
	}
	principal := audit.BearerPrincipal("admin", "admin")
	if ch.Principal != "" && ch.Principal != "admin-bootstrap" {
		principal = audit.BearerPrincipal(ch.Principal, "admin")
	}
	meta := map[string]any{
		"config_kind": ch.Kind, "config_name": ch.Name, "config_version": ch.Version, "config_digest": ch.Digest,
	}
	if ch.PreviousDigest != "" {
		meta["config_previous_digest"] = ch.PreviousDigest
	}
	ev, err := c.events.Build(r, audit.Decision{
		RequestID:    contracts.NewUUIDv7(),
		SurfaceID:    opConfig,
		TemplatePath: "/v1/config/{kind}/{name}",
		Status:       http.StatusOK,
		Principal:    principal,
		Meta:         meta,
		Time:         ch.Time,
	})
	if err != nil {
		return err
	}
	_, err = c.log.Append(ctx, ev)
	return err
}
