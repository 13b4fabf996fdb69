package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/gateway"
	"github.com/exogate/exogate/internal/testutil"
)

// goroutines is every goroutine's stack, by the goroutine's header line
// ("goroutine 12 [running]:" without its state).
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		id, _, _ := strings.Cut(string(g), " [")
		out[id] = string(g)
	}
	return out
}

// leaked is the goroutines started since before that are still running,
// except os/signal's process-wide watcher, which the first signal.Notify
// starts for good.
func leaked(before map[string]string) []string {
	var out []string
	for id, stack := range goroutines() {
		if _, ok := before[id]; ok || strings.Contains(stack, "os/signal.loop") || strings.Contains(stack, "os/signal.signal_recv") {
			continue
		}
		out = append(out, stack)
	}
	return out
}

// A gateway run in process with a TLS listener, an admin listener and a
// reload leaves no goroutine of its own behind once run returns: the
// certificate watcher, the credentials refresh and the replaced gateway's
// delayed close all stop with it.
func TestRunLeavesNoGoroutines(t *testing.T) {
	// Serial: it counts the whole process's goroutines.
	farm := newFarm(t)
	p := newPKI(t)
	cfg := clientsConfig(farm, fmt.Sprintf(`tls: {cert_file: %s, key_file: %s}
shutdown_delay: 0s
`, p.serverCert, p.serverKey))
	path := writeFile(t, "tls.yaml", cfg)
	before := goroutines()

	logs := &testutil.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	started := make(chan *gateway.Server, 1)
	gatewaysStarted.Add(1)
	go func() {
		done <- runNotify(ctx, []string{"exogate", "-config", path}, func(k string) string { return farmEnv()[k] }, nil, io.Discard, io.MultiWriter(logs, allLogs),
			func(s *gateway.Server) { started <- s })

	}()
	var gw *gateway.Server
	select {
	case gw = <-started:
	case err := <-done:
		t.Fatalf("run exited before listening: %v\n%s", err, logs.String())
	}
	base := "https://" + gw.Addr().String()
	clientWith, do := p.clients(base)
	c := clientWith()
	waitFor(t, func() bool { code, _, err := do(c, "GET", "/readyz", nil); return err == nil && code == 200 })
	c.CloseIdleConnections()
	resp, err := http.Post("http://"+gw.AdminAddr().String()+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("reload: %d", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	var left []string
	defer func() {
		if t.Failed() {
			t.Log(strings.Join(left, "\n\n"))
		}
	}()
	testutil.Eventually(t, 10*time.Second, "goroutines left behind by run", func() bool {
		left = leaked(before)
		return len(left) == 0
	})
}
