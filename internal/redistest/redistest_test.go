package redistest_test

import (
	"net"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/redistest"
)

// reachable reports whether something accepts connections on addr.
func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestStopRestart(t *testing.T) {
	s := redistest.Start(t)
	addr := s.Addr()
	if !reachable(addr) {
		t.Fatalf("%s not reachable after Start", addr)
	}
	s.Stop()
	if reachable(addr) {
		t.Fatalf("%s still reachable after Stop", addr)
	}
	s.Stop() // a second Stop does nothing
	s.Restart()
	if s.Addr() != addr {
		t.Errorf("Addr after Restart = %s, want %s", s.Addr(), addr)
	}
	if !reachable(addr) {
		t.Fatalf("%s not reachable after Restart", addr)
	}
	s.Restart() // from running
	if !reachable(addr) {
		t.Fatalf("%s not reachable after a second Restart", addr)
	}
}

func TestTwoServers(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers on %s", a.Addr())
	}
}
