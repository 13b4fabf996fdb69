package redistest_test

import (
	"net"
	"strconv"
	"syscall"
	"testing"

	"github.com/exogate/exogate/internal/redistest"
)

// TestStoppedPortHeld checks that a stopped server's port stays reserved
// until Restart: no one else can bind it (another test's server, which the
// stopped server's clients would then reach and take for theirs), and a
// connection to it is refused.
func TestStoppedPortHeld(t *testing.T) {
	s := redistest.Start(t)
	_, p, _ := net.SplitHostPort(s.Addr())
	port, _ := strconv.Atoi(p)
	s.Stop()
	if reachable(s.Addr()) {
		t.Fatalf("%s reachable after Stop", s.Addr())
	}
	// A plain bind, as a process that picked the port would do it.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err == nil {
		t.Fatalf("another socket could bind %s while the server was stopped", s.Addr())
	}
	s.Restart()
	if !reachable(s.Addr()) {
		t.Fatalf("%s not reachable after Restart", s.Addr())
	}
}
