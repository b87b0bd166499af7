package capability_test

import (
	"errors"
	"testing"

	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
)

// TestDecisionErrSentinels: every denying reason's Decision.Err matches its
// own sentinel with errors.Is (and no other reason's), carries the
// decision's contract code, and names only the reason.
func TestDecisionErrSentinels(t *testing.T) {
	reasons := []capability.ReasonCode{
		capability.ReasonNoCapability, capability.ReasonExpired, capability.ReasonNotYetValid, capability.ReasonRevoked,
		capability.ReasonSignatureInvalid, capability.ReasonScopeMismatch, capability.ReasonDelegationInvalid,
		capability.ReasonUnknownTool, capability.ReasonReplay, capability.ReasonAudienceMismatch,
		capability.ReasonHolderMismatch, capability.ReasonRBACDenied, capability.ReasonStoreUnavailable,
	}
	for _, r := range reasons {
		d := capability.Decision{Reason: r}
		err := d.Err()
		sentinel := r.Err()
		if sentinel == nil || !errors.Is(err, sentinel) {
			t.Fatalf("%s: %v does not match its sentinel %v", r, err, sentinel)
		}
		if contracts.CodeOf(err) != d.ErrorCode() || contracts.CodeOf(sentinel) != d.ErrorCode() {
			t.Errorf("%s: codes %s / %s, decision %s", r, contracts.CodeOf(err), contracts.CodeOf(sentinel), d.ErrorCode())
		}
		for _, other := range reasons {
			if other != r && errors.Is(err, other.Err()) {
				t.Errorf("%s matches %s's sentinel", r, other)
			}
		}
		if (r == capability.ReasonStoreUnavailable) != errors.Is(err, capability.ErrStore) {
			t.Errorf("%s: store sentinel", r)
		}
	}
	if capability.ReasonAllowed.Err() != nil || (capability.Decision{Allowed: true}).Err() != nil {
		t.Fatal("an allowed decision has an error")
	}
	if errors.Is(capability.Decision{Reason: capability.ReasonExpired}.Err(), contracts.ErrAuthInvalid) {
		t.Fatal("AUTH_EXPIRED matches AUTH_INVALID")
	}
	if !errors.Is(capability.Decision{Reason: capability.ReasonRevoked}.Err(), &contracts.Error{Code: contracts.CodeAuthRevoked}) {
		t.Fatal("a revoked decision does not match its code")
	}
}
