package gateway

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/exogate/exogate/internal/config"
	"github.com/exogate/exogate/ratelimit"
)

// AdminURL is where tools reach the admin listener bound at addr:
// advertise (admin.advertise_url) when set, else http://<addr>, with
// hostname's answer for an unspecified host (0.0.0.0, ::); "" when addr is
// nil (no admin listener), or when the host is unspecified and hostname
// fails.
func AdminURL(advertise string, addr net.Addr, hostname func() (string, error)) string {
	if advertise != "" {
		return advertise
	}
	if addr == nil {
		return ""
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if host, err = hostname(); err != nil || host == "" {
			return ""
		}
	}
	return "http://" + net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// Replicas lists the live replicas that share cfg's limits.redis (address,
// database, key prefix; credentials from getenv), with the admin URLs their
// heartbeats publish, sorted by ID. It fails when limits.backend is not
// redis: the replicas then have no shared place to announce themselves.
func Replicas(ctx context.Context, cfg config.Config, getenv func(string) string) ([]ratelimit.Replica, error) {
	if cfg.Limits.Backend != "redis" {
		return nil, errors.New("-replicas is needed: limits.backend is " + backendName(cfg.Limits.Backend) + ", so replicas are not discoverable")
	}
	rc, err := redisSettings(cfg.Limits, getenv)
	if err != nil {
		return nil, err
	}
	return ratelimit.ListReplicas(ctx, rc)
}

// backendName is limits.backend as configured, "memory" when empty.
func backendName(b string) string {
	if b == "" {
		return "memory"
	}
	return b
}
