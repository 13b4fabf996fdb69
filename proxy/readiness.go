package proxy

// Readiness is the one answer to whether the gateway should receive
// traffic, given by /readyz on the proxy listener and on the admin
// listener alike: not once SetDraining was called (reason "draining"), nor
// while an account has no credentials ("credentials unavailable"); ready
// otherwise, with reason "". It is safe for concurrent use.
func (h *Handler) Readiness() (ready bool, reason string) {
	switch {
	case h.draining.Load():
		return false, "draining"
	case !h.authorizer.Ready():
		return false, "credentials unavailable"
	}
	return true, ""
}
