package ratelimit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/exogate/exogate/ratelimit"
)

// newRedis returns a started Redis limiter for the account sid (and ac2),
// closed when the test ends.
func newRedis(t testing.TB, cfg ratelimit.Config, rc ratelimit.RedisConfig) *ratelimit.Redis {
	t.Helper()
	r, err := ratelimit.NewRedis([]string{sid, ac2}, cfg, rc)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	r.Start(context.Background())
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// ac2 is a second account.
const ac2 = "ac2"

// inspect returns a client for looking at what the limiters wrote.
func inspect(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// logSink collects zerolog lines; it is safe for concurrent use.
type logSink struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (s *logSink) Write(p []byte) (int, error) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.lines = append(s.lines, m)
	s.mu.Unlock()
	return len(p), nil
}

// count returns how many lines have the level and contain msg.
func (s *logSink) count(level, msg string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		if l["level"] == level && strings.Contains(l["message"].(string), msg) {
			n++
		}
	}
	return n
}

// logger returns a Logger that writes to s.
func (s *logSink) logger() zerolog.Logger { return zerolog.New(s) }

// Log messages of the switches, as the tests look for them.
const (
	msgDown = "Redis unavailable"
	msgUp   = "Redis available again"
)

// isRejection reports whether err is a *LimitedError.
func isRejection(err error) bool {
	var le *ratelimit.LimitedError
	return errors.As(err, &le)
}

// stallProxy is a TCP proxy in front of Redis that holds back every write
// from a client that contains pattern until the test calls release: a Redis
// that is slow for one key only, with everything else passing at once.
type stallProxy struct {
	ln       net.Listener
	target   string
	pattern  []byte
	stalled  atomic.Int32  // writes held back so far
	released chan struct{} // closed by release
	once     sync.Once
	done     chan struct{}
	wg       sync.WaitGroup
}

// newStallProxy starts a stallProxy, stopped when the test ends.
func newStallProxy(t testing.TB, target, pattern string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, pattern: []byte(pattern), released: make(chan struct{}), done: make(chan struct{})}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		close(p.done)
		ln.Close()
		p.wg.Wait()
	})
	return p
}

// release lets the writes held back, and all later ones, through.
func (p *stallProxy) release() { p.once.Do(func() { close(p.released) }) }

// Addr returns the proxy's address.
func (p *stallProxy) Addr() string { return p.ln.Addr().String() }

func (p *stallProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.wg.Go(func() {
			<-p.done
			c.Close()
			up.Close()
		})
		p.wg.Go(func() {
			_, _ = io.Copy(c, up)
			c.Close()
		})
		p.wg.Go(func() {
			defer up.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if bytes.Contains(buf[:n], p.pattern) {
					p.stalled.Add(1)
					select {
					case <-p.released:
					case <-p.done:
						return
					}
				}
				if _, err := up.Write(buf[:n]); err != nil {
					return
				}
			}
		})
	}
}

// admitAll calls Admit n times at once on r and returns the errors.
func admitAll(r *ratelimit.Redis, n int, account, bucket string) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = r.Admit(context.Background(), account, bucket) })
	}
	wg.Wait()
	return errs
}

// retryWithin reports whether a RetryAfter got is what is left, after at
// most elapsed, of a wait want: the time a token (or a pause's end) was due
// since the test's clock started at or before Redis's. Two milliseconds
// either way allow for pauses kept in whole milliseconds, Redis's float
// seconds, and the two clocks running apart.
func retryWithin(got, want, elapsed time.Duration) bool {
	const slack = 2 * time.Millisecond
	return got >= want-elapsed-slack && got <= want+slack
}

// within reports whether d is within tol of want.
func within(d, want, tol time.Duration) bool {
	return d >= want-tol && d <= want+tol
}
