//go:build linux

package rotate

import (
	"bytes"
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: the master, where the test types and
// reads what the terminal shows, and the slave, the terminal ReadPair
// reads.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pseudo-terminal number: %v", err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pseudo-terminal's slave: %v", err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

// promptWriter signals each prompt written to it.
type promptWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	prompts chan struct{}
}

func (p *promptWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if bytes.Contains(b, []byte("not echoed")) {
		p.prompts <- struct{}{}
	}
	return p.buf.Write(b)
}

// waitEchoOff waits until the terminal no longer echoes what is typed:
// ReadPair has turned echo off and is about to read.
func waitEchoOff(ctx context.Context, t *testing.T, slave *os.File) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatalf("terminal attributes: %v", err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("ReadPair never turned the terminal's echo off")
		case <-tick.C:
		}
	}
}

// At a terminal, ReadPair prompts for the key and the token, reads each
// with echo off, and the terminal shows neither.
func TestReadPairTerminalDoesNotEcho(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	master, slave := openPTY(t)
	// The sanity check: with echo on, the terminal shows what is typed.
	tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil || tio.Lflag&unix.ECHO == 0 {
		t.Fatalf("a new terminal echoes: lflag %#x, %v", tio.Lflag, err)
	}

	shown := make(chan string)
	go func() {
		// Everything the terminal shows, until the slave is closed (EIO).
		b, _ := io.ReadAll(master)
		shown <- string(b)
	}()
	prompt := &promptWriter{prompts: make(chan struct{}, 2)}
	type pair struct {
		key, token string
		err        error
	}
	got := make(chan pair, 1)
	go func() {
		k, tok, err := ReadPair(slave, prompt)
		got <- pair{k, tok, err}
	}()
	for _, typed := range []string{"KEYabcd1234\n", "TOKENsecret5678\n"} {
		select {
		case <-prompt.prompts:
		case <-ctx.Done():
			t.Fatal("no prompt")
		}
		waitEchoOff(ctx, t, slave)
		if _, err := master.WriteString(typed); err != nil {
			t.Fatalf("typing: %v", err)
		}
	}
	var p pair
	select {
	case p = <-got:
	case <-ctx.Done():
		t.Fatal("ReadPair did not return")
	}
	if p.err != nil || p.key != "KEYabcd1234" || p.token != "TOKENsecret5678" {
		t.Fatalf("ReadPair = %q, %q, %v; want the typed pair", p.key, p.token, p.err)
	}
	slave.Close()
	out := <-shown
	for _, secret := range []string{"KEYabcd", "TOKENsecret"} {
		if strings.Contains(out, secret) {
			t.Errorf("the terminal echoed %q: %q", secret, out)
		}
	}
	if n := strings.Count(prompt.buf.String(), "not echoed"); n != 2 {
		t.Errorf("%d prompts, want 2: %q", n, prompt.buf.String())
	}
}
