package webhooks

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// crashChildEnv names the store a re-executed test binary accepts into
// until it is killed.
const crashChildEnv = "EXOGATE_WEBHOOK_STORE_CRASH_CHILD"

// TestStoreCrashAfterAccept kills a process that is accepting callbacks
// (SIGKILL, no chance to close the file) right after some Accept calls
// returned, with others in the middle of their commit, then reopens the
// store: every callback whose Accept returned is there, with its key.
func TestStoreCrashAfterAccept(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(t, path)
		return
	}
	path := filepath.Join(t.TempDir(), "webhooks.db")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestStoreCrashAfterAccept$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killAfter := 20 + rand.IntN(300)
	acked := map[string]string{} // id → sid
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		id, sid, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "ACK "), " ")
		if !ok || !strings.HasPrefix(sc.Text(), "ACK ") {
			continue
		}
		acked[id] = sid
		if len(acked) == killAfter && !killed {
			killed = true
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Lines the child wrote before it died are acknowledgements too: the
	// scanner read the pipe to its end.
	err = cmd.Wait()
	if !killed {
		t.Fatalf("the child stopped after %d acknowledgements (%v): %s", len(acked), err, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, not SIGKILL: %s", err, stderr.String())
	}
	checkAfterCrash(t, path, acked)
}

func checkAfterCrash(t *testing.T, path string, acked map[string]string) {
	t.Helper()
	s, err := OpenStore(path, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for id, sid := range acked {
		m, err := s.Get(id)
		if err != nil {
			t.Fatalf("acknowledged %s (%s) lost: %v", id, sid, err)
		}
		want := crashMessage(sid)
		if m.Key != want.Key || !bytes.Equal(m.Body, want.Body) || m.State != StatePending {
			t.Fatalf("acknowledged %s came back as %+v", id, m)
		}
		if out, orig, err := s.Accept(want); err != nil || out != Duplicate || orig.ID != id {
			t.Fatalf("repeat of acknowledged %s: %v %s %v, want Duplicate", id, out, orig.ID, err)
		}
	}
	all, err := s.List("", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < len(acked) || st["calls"].Pending != len(all) {
		t.Fatalf("%d acknowledged, %d stored, stats %+v", len(acked), len(all), st["calls"])
	}
	t.Logf("%d acknowledged before the kill, %d stored", len(acked), len(all))
}

func crashMessage(sid string) Message {
	m := callMsg("calls", sid, "completed", time.Time{})
	m.Body = append(m.Body, "&Pad="+strings.Repeat("x", 512)...)
	return m
}

// crashChild accepts callbacks from several goroutines into the store at
// path and writes "ACK id sid" once each Accept has returned, until it is
// killed (or, bounded, after a minute or 50,000 callbacks).
func crashChild(t *testing.T, path string) {
	s, err := OpenStore(path, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		next atomic.Int64
		wg   sync.WaitGroup
	)
	deadline := time.Now().Add(time.Minute)
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				n := next.Add(1)
				if n > 50000 {
					return
				}
				sid := fmt.Sprintf("CA%06d", n)
				_, m, err := s.Accept(crashMessage(sid))
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					return
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ACK %s %s\n", m.ID, sid)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Fatal("the child was not killed")
}
