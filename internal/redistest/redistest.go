// Package redistest runs a real redis-server for tests: one process per
// test, on a free loopback port, with nothing persisted, stopped when the
// test ends. It is imported by tests only, but lives in a non-test file so
// that every package's tests can use it.
package redistest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/testutil"
)

// startTimeout bounds how long Start and Restart wait for the server to
// answer PING.
const startTimeout = 10 * time.Second

// Server is one redis-server process started by [Start]. Its methods are
// safe for concurrent use. The zero Server is not usable.
type Server struct {
	t    testing.TB
	bin  string
	port int
	dir  string

	mu   sync.Mutex
	cmd  *exec.Cmd            // nil while stopped
	held func()               // releases the port held while stopped; nil when not held
	done chan struct{}        // closed when cmd has exited
	out  *testutil.SyncBuffer // the server's output, for failure reports
}

// Start starts redis-server on a free port of 127.0.0.1, with persistence
// off and its working directory in a temporary directory, and waits until it
// answers PING. The server is stopped when the test ends. Start fails the
// test if redis-server is not in PATH or does not come up.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not found: apt-get install -y redis-server (scripts/test.sh does this)")
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), out: &testutil.SyncBuffer{}}
	t.Cleanup(func() {
		s.Stop()
		s.release()
	})
	// A port found free can be taken before the server binds it: try a few.
	var last error
	for range 5 {
		if s.port, last = freePort(); last != nil {
			continue
		}
		if last = s.start(); last == nil {
			return s
		}
	}
	t.Fatalf("redistest: starting redis-server: %v\n%s", last, s.out.String())
	return nil
}

// Addr returns the server's host:port.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Stop stops the server (SIGTERM, then SIGKILL if it lingers) and waits
// until it has exited and the port is closed. Until Restart (or the end of
// the test) the port stays reserved where the platform allows (Linux):
// connections to it are refused, and no other listener, in this process or
// another, can be given it, so the stopped server's clients never reach
// another test's server instead. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
	release, err := holdPort(s.port)
	if err != nil {
		s.t.Logf("redistest: cannot reserve %s while the server is stopped: %v", s.Addr(), err)
		return
	}
	s.held = release
}

// release gives up the port held while the server is stopped.
func (s *Server) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked()
}

func (s *Server) releaseLocked() {
	if s.held != nil {
		s.held()
		s.held = nil
	}
}

// Restart stops the server if it runs and starts it again on the same
// port, empty, and waits until it answers PING. It fails the test if the
// server does not come back.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	// The old process's port is closed, but allow for a slow release.
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	deadline := time.Now().Add(startTimeout)
	err := s.start()
	for err != nil && time.Now().Before(deadline) {
		<-ticker.C
		err = s.start()
	}
	if err != nil {
		s.t.Fatalf("redistest: restarting redis-server on %s: %v\n%s", s.Addr(), err, s.out.String())
	}
}

// start runs redis-server on s.port and waits for PING.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked()
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
	)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()

	ticker := time.NewTicker(10 * time.Millisecond)
	defer ticker.Stop()
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	for {
		// A port found free may have gone to another test's server, which
		// would answer while ours fails to bind: only our process will do.
		if ping(s.Addr(), cmd.Process.Pid) == nil {
			s.cmd, s.done = cmd, done
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server exited: %v", cmd.ProcessState)
		case <-deadline.C:
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("no answer to PING on %s within %v", s.Addr(), startTimeout)
		case <-ticker.C:
		}
	}
}

// ping sends PING to addr, checks for PONG, and checks that the server
// that answered is the process pid.
func ping(addr string, pid int) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")); err != nil {
		return err
	}
	rd := bufio.NewReader(c)
	line, err := rd.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	// INFO's answer is one bulk string: $<length>, then the text.
	if line, err = rd.ReadString('\n'); err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(line, "$"), "\r\n"))
	if err != nil {
		return fmt.Errorf("INFO answered %q", line)
	}
	info := make([]byte, n)
	if _, err := io.ReadFull(rd, info); err != nil {
		return err
	}
	want := "process_id:" + strconv.Itoa(pid) + "\r\n"
	if !strings.Contains(string(info), want) {
		return fmt.Errorf("%s is answered by another redis-server than process %d", addr, pid)
	}
	return nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
