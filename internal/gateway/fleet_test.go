package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/exogate/exogate/internal/metrics"
	"github.com/exogate/exogate/internal/redistest"
)

// Two gateways sharing one Redis are both listed by Replicas, each with the
// URL of its own admin listener, bound on port 0, which answers /healthz.
func TestReplicasListsAdminURLs(t *testing.T) {
	srv := redistest.Start(t)
	cfg, getenv := testConfig(t)
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Limits.Backend = "redis"
	cfg.Limits.Redis.Address = srv.Addr()
	cfg.Limits.Redis.KeyPrefix = "fleet:"
	cfg.ShutdownDelay, cfg.ShutdownTimeout = 0, 0
	want := map[string]bool{}
	for range 2 {
		s, err := New(cfg, Deps{Getenv: getenv, Logger: zerolog.Nop(), Metrics: metrics.New("test"), Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		want["http://"+s.AdminAddr().String()] = true
	}
	got, err := Replicas(context.Background(), cfg, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("Replicas = %+v, want 2", got)
	}
	for _, r := range got {
		if !want[r.AdminURL] || !strings.HasPrefix(r.AdminURL, "http://127.0.0.1:") || strings.HasSuffix(r.AdminURL, ":0") {
			t.Errorf("replica %s: admin URL %q, want one of %v", r.ID, r.AdminURL, want)
			continue
		}
		delete(want, r.AdminURL)
		resp, err := http.Get(r.AdminURL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s/healthz: %d", r.AdminURL, resp.StatusCode)
		}
	}

	cfg.Limits.Backend = "memory"
	if _, err := Replicas(context.Background(), cfg, getenv); err == nil || !strings.Contains(err.Error(), "limits.backend is memory") {
		t.Errorf("memory backend: %v", err)
	}
}

// AdminURL prefers admin.advertise_url, names an unspecified host by the
// machine's host name, and is empty without an admin listener.
func TestAdminURL(t *testing.T) {
	host := func() (string, error) { return "pod-7", nil }
	broken := func() (string, error) { return "", errors.New("no name") }
	tests := []struct {
		name, advertise string
		addr            net.Addr
		hostname        func() (string, error)
		want            string
	}{
		{"advertised", "http://10.1.2.3:9901", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40001}, host, "http://10.1.2.3:9901"},
		{"loopback", "", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40001}, host, "http://127.0.0.1:40001"},
		{"pod IP", "", &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 9901}, host, "http://10.1.2.3:9901"},
		{"IPv6", "", &net.TCPAddr{IP: net.ParseIP("fd00::1"), Port: 9901}, host, "http://[fd00::1]:9901"},
		{"every interface", "", &net.TCPAddr{IP: net.IPv4zero, Port: 9901}, host, "http://pod-7:9901"},
		{"every interface, IPv6", "", &net.TCPAddr{IP: net.IPv6unspecified, Port: 9901}, host, "http://pod-7:9901"},
		{"no address", "", &net.TCPAddr{Port: 9901}, host, "http://pod-7:9901"},
		{"no host name", "", &net.TCPAddr{IP: net.IPv4zero, Port: 9901}, broken, ""},
		{"no listener", "", nil, host, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := AdminURL(tc.advertise, tc.addr, tc.hostname); got != tc.want {
				t.Errorf("AdminURL = %q, want %q", got, tc.want)
			}
		})
	}
}
