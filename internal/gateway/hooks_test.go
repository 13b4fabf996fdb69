package gateway

import (
	"strings"
	"testing"

	"github.com/exogate/exogate/internal/config"
)

// TestCallbackURLHidesOtherAccountsRoutes checks that a caller naming
// another account's webhook route in exogate:// learns nothing of it: the
// refusal is the one for a route that does not exist, and does not name
// the route's account.
func TestCallbackURLHidesOtherAccountsRoutes(t *testing.T) {
	h := &hooks{}
	h.setRoutes(config.Webhooks{Routes: []config.WebhookRoute{
		{Name: "calls", Account: "acme", Kind: "call"},
	}})
	_, other := h.CallbackURL("globex", "call", "calls")
	_, missing := h.CallbackURL("globex", "call", "nope")
	if other == nil || missing == nil {
		t.Fatalf("errors %v, %v; want refusals", other, missing)
	}
	if strings.Replace(other.Error(), "calls", "nope", 1) != missing.Error() {
		t.Fatalf("another account's route: %q; a missing one: %q", other, missing)
	}
	if strings.Contains(other.Error(), "acme") {
		t.Fatalf("the refusal names the route's account: %q", other)
	}
}
