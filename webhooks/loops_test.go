package webhooks

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// doerFunc is a Doer made of a function.
type doerFunc func(*http.Request) (*http.Response, error)

func (f doerFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

// TestBackgroundLoops runs Start's loops on synctest's clock: the
// reconciler asks Exotel once reconcile_after has passed and its
// synthetic callback is delivered; a failed delivery is retried by the
// dispatcher's timer; the sweeper runs.
func TestBackgroundLoops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ex := &fakeExotel{}
		ex.set(callSid, "completed", nil)
		var hits atomic.Int64
		var mu sync.Mutex
		var sources []string
		client := doerFunc(func(r *http.Request) (*http.Response, error) {
			io.Copy(io.Discard, r.Body)
			mu.Lock()
			sources = append(sources, r.Header.Get("X-Exogate-Source"))
			mu.Unlock()
			code := http.StatusOK
			if hits.Add(1) == 1 {
				code = http.StatusBadGateway
			}
			return &http.Response{StatusCode: code, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}}, nil
		})
		cfg := validConfig()
		cfg.Routes[0].ReconcileAfter = time.Minute
		s, err := Open(filepath.Join(t.TempDir(), "w.db"), cfg, Deps{Log: zerolog.Nop(), Lookup: ex.lookup, Client: client})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		s.Start(context.Background())
		if err := s.Expect("calls", callSid); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Second)
		synctest.Wait()
		if ex.askedN() != 0 {
			t.Fatal("asked Exotel before reconcile_after")
		}
		// The reconciler's tick after the minute, a failed delivery, and
		// the retry within a second.
		time.Sleep(20 * time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if ex.askedN() != 1 || hits.Load() != 2 || sources[1] != "poll" {
			t.Fatalf("asked %d times, %d deliveries from %v", ex.askedN(), hits.Load(), sources)
		}
		if st, _ := s.Stats(); st["calls"].Delivered != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}
