package a2a

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// PushAuditMeta are the meta keys of push delivery audit events, for the
// audit.EventBuilder's allowlist of surface [PushDestinationOp].
var PushAuditMeta = []string{"task_id", "push_config_id", "destination_host", "receiver_status", "error_code"}

// PushAuditTemplate is the template path recorded in push delivery audit
// events (a delivery is not a request to this server; the destination URL
// is never recorded, only its host).
const PushAuditTemplate = "/a2a/push/{task_id}"

// DeliveryAudit configures [AuditDeliveries].
type DeliveryAudit struct {
	// Log receives one event per delivery outcome. Required.
	Log audit.AuditLog
	// Events builds the events; its allowlist should admit
	// [PushAuditMeta] under surface [PushDestinationOp]. Required.
	Events *audit.EventBuilder
	// Server is the server's did:key, the events' principal (the server
	// signs the deliveries).
	Server identity.DID
	// Team is the principal's team_id (the contract requires one for a
	// signed principal). If empty, "server".
	Team string
	// OnError, if set, is told when an event cannot be built or appended.
	OnError func(error)
	// Timeout bounds one append (default 5 s).
	Timeout time.Duration
}

// AuditDeliveries returns a PushNotifierConfig.OnDelivery that appends one
// audit event per delivery outcome: surface [PushDestinationOp], method
// POST, status the receiver's final HTTP status (502 when it could not be
// reached, 403 when the destination was refused by the address policy),
// outcome success for a 2xx answer, and meta naming the task, the config,
// the destination host and the error code. Tokens, credentials and the
// destination's path and query are never recorded.
func AuditDeliveries(cfg DeliveryAudit) func(c PushConfig, taskID string, status int, err error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Team == "" {
		cfg.Team = "server"
	}
	return func(c PushConfig, taskID string, status int, err error) {
		meta := map[string]any{"task_id": taskID}
		if c.ID != "" {
			meta["push_config_id"] = c.ID
		}
		if u, perr := url.Parse(c.URL); perr == nil && u.Host != "" {
			meta["destination_host"] = u.Host
		}
		httpStatus := status
		switch {
		case err != nil && contracts.CodeOf(err) == contracts.CodePolicyDenied:
			httpStatus = http.StatusForbidden
			meta["error_code"] = contracts.CodePolicyDenied
		case err != nil:
			httpStatus = http.StatusBadGateway
			meta["error_code"] = contracts.CodeOf(err)
		case status < 200 || status > 299:
			meta["receiver_status"] = strconv.Itoa(status)
			httpStatus = http.StatusBadGateway
		default:
			meta["receiver_status"] = strconv.Itoa(status)
		}
		outcome := audit.OutcomeSuccess
		if httpStatus >= 300 {
			outcome = audit.OutcomeFailure
		}
		ev := cfg.Events.DraftEvent(http.MethodPost, netip.Addr{}, audit.Decision{
			RequestID:    contracts.NewUUIDv7(),
			SurfaceID:    PushDestinationOp,
			TemplatePath: PushAuditTemplate,
			Status:       httpStatus,
			Outcome:      outcome,
			Principal:    audit.SignedPrincipal(cfg.Server.String(), cfg.Team, cfg.Server.String()),
			Resource:     &audit.Resource{ResourceType: "a2a.task", ResourceID: taskID},
			Meta:         meta,
		})
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
		_, berr := cfg.Log.Append(ctx, ev) // validates and seals the draft
		cancel()
		if berr != nil && cfg.OnError != nil {
			cfg.OnError(berr)
		}
	}
}
