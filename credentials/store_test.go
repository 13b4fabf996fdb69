package credentials

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// fakeSource is a source made of a function field.
type fakeSource struct {
	loadFn func(ctx context.Context) (string, string, string, error)
	loads  atomic.Int64
}

var _ source = (*fakeSource)(nil)

func (f *fakeSource) load(ctx context.Context) (pair, error) {
	f.loads.Add(1)
	key, token, version, err := f.loadFn(ctx)
	return pair{key: key, token: token, version: version}, err
}
func (f *fakeSource) kind() string  { return "fake" }
func (f *fakeSource) where() string { return "fake/path" }

// k8sSecretDir lays out a directory the way a Kubernetes Secret volume does:
// api_key -> ..data/api_key, ..data -> ..<timestamp>/, and update swaps the
// ..data link atomically to a new timestamped directory.
type k8sSecretDir struct {
	dir string
	gen int
}

func newK8sSecretDir(t *testing.T) *k8sSecretDir {
	d := &k8sSecretDir{dir: t.TempDir()}
	for _, name := range []string{"api_key", "api_token"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(d.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func (d *k8sSecretDir) update(t *testing.T, key, token string) {
	t.Helper()
	d.gen++
	ts := filepath.Join(d.dir, "..2026_11_27_"+strings.Repeat("x", d.gen))
	if err := os.Mkdir(ts, 0o700); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(ts, "api_key"), []byte(key+"\n"), 0o600)
	_ = os.WriteFile(filepath.Join(ts, "api_token"), []byte(token+"\n"), 0o600)
	tmp := filepath.Join(d.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d.dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

func basicOf(t *testing.T, h http.Header) (string, string) {
	t.Helper()
	r := &http.Request{Header: h}
	k, tk, ok := r.BasicAuth()
	if !ok {
		t.Fatalf("no Basic credentials in %q", h.Values("Authorization"))
	}
	return k, tk
}

func TestFileSourceFollowsKubernetesSymlinkSwap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newK8sSecretDir(t)
		var logs bytes.Buffer
		s, err := New(Config{
			Accounts: []Spec{{Account: "acme", Source: "file",
				APIKeyFile: filepath.Join(d.dir, "api_key"), APITokenFile: filepath.Join(d.dir, "api_token")}},
			FilePollInterval: 5 * time.Second,
			Logger:           zerolog.New(&logs),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer func() { cancel(); _ = s.Close(context.Background()) }()
		s.Start(ctx)

		// No files yet: not ready, requests refused, keeps trying.
		synctest.Wait()
		if s.Ready() {
			t.Fatal("ready without credentials")
		}
		if _, err := s.Authorize(http.Header{}, "acme"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Authorize before load: %v", err)
		}

		d.update(t, "key1", "token1")
		time.Sleep(3 * time.Second) // past the first backoff step
		synctest.Wait()
		if !s.Ready() {
			t.Fatal("not ready after the files appeared")
		}
		h := http.Header{}
		v1, _ := s.Authorize(h, "acme")
		if k, tk := basicOf(t, h); k != "key1" || tk != "token1" {
			t.Fatalf("got %s:%s", k, tk)
		}

		d.update(t, "key1", "token2")
		time.Sleep(11 * time.Second) // two poll intervals at most (first is random)
		synctest.Wait()
		h = http.Header{}
		v2, _ := s.Authorize(h, "acme")
		if _, tk := basicOf(t, h); tk != "token2" || v2 == v1 {
			t.Fatalf("rotation not picked up: token %s, version %s -> %s", tk, v1, v2)
		}
		if p := s.accounts["acme"].prev.Load(); p == nil || p.Version() != v1 {
			t.Errorf("previous version not kept")
		}
		for _, secret := range []string{"token1", "token2", "key1"} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("log contains %q: %s", secret, logs.String())
			}
		}
		if !strings.Contains(logs.String(), "file does not exist") {
			t.Errorf("the missing file was not logged: %s", logs.String())
		}
	})
}

func TestPollerKeepsLastGoodOnFailureAndLogsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		s, err := New(Config{Accounts: []Spec{{Account: "acme", Source: "file", APIKeyFile: "k", APITokenFile: "t"}},
			RefreshInterval: 10 * time.Second, FilePollInterval: 10 * time.Second, Logger: zerolog.New(&logs)})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		state := struct {
			key, token, version string
			err                 error
		}{"k1", "t1", "v1", nil}
		fake := &fakeSource{loadFn: func(context.Context) (string, string, string, error) {
			mu.Lock()
			defer mu.Unlock()
			return state.key, state.token, state.version, state.err
		}}
		s.accounts["acme"].src = fake
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s.Start(ctx)
		synctest.Wait()
		if !s.Ready() {
			t.Fatal("not ready")
		}

		mu.Lock()
		state.err = errors.New("permission denied (403)")
		mu.Unlock()
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if n := fake.loads.Load(); n < 10 {
			t.Errorf("only %d reads in 5 minutes of failure: not retrying", n)
		}
		if c := s.Current("acme"); c == nil || c.Version() != "v1" {
			t.Fatalf("last good credentials lost: %v", c)
		}
		if n := strings.Count(logs.String(), "permission denied (403)"); n != 1 {
			t.Errorf("the same error logged %d times, want once", n)
		}

		// A deleted latest version reads as empty fields: never swapped in.
		mu.Lock()
		state.err, state.token, state.version = nil, "", "v2"
		mu.Unlock()
		time.Sleep(time.Minute)
		synctest.Wait()
		if c := s.Current("acme"); c.Version() != "v1" {
			t.Errorf("an incomplete pair replaced the good one: %s", c.Version())
		}

		mu.Lock()
		state.token, state.version = "t3", "v3"
		mu.Unlock()
		time.Sleep(time.Minute)
		synctest.Wait()
		if c := s.Current("acme"); c.Version() != "v3" {
			t.Errorf("recovery not picked up: %s", c.Version())
		}
		if !strings.Contains(logs.String(), "source recovered") {
			t.Error("recovery not logged")
		}
	})
}

func TestReauthorize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := New(Config{Accounts: []Spec{{Account: "acme", Source: "file", APIKeyFile: "k", APITokenFile: "t"}},
			RefreshInterval: time.Hour, MinForcedRefresh: 2 * time.Second, PreviousGrace: 10 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		token, version := "t1", "v1"
		release := make(chan struct{})
		blocking := false
		fake := &fakeSource{loadFn: func(context.Context) (string, string, string, error) {
			mu.Lock()
			b := blocking
			mu.Unlock()
			if b {
				<-release
			}
			mu.Lock()
			defer mu.Unlock()
			return "k", token, version, nil
		}}
		sl := s.accounts["acme"]
		sl.src = fake
		if err := s.refresh(context.Background(), sl); err != nil {
			t.Fatal(err)
		}

		// Exotel rejects v1 and the source has nothing newer, no previous: 401 stands.
		if s.Reauthorize(context.Background(), http.Header{}, "acme", "v1") {
			t.Fatal("offered a retry with nothing new")
		}

		// Rotated centrally: concurrent 401s share one read, and all retry with v2.
		mu.Lock()
		token, version, blocking = "t2", "v2", true
		mu.Unlock()
		time.Sleep(3 * time.Second) // past MinForcedRefresh
		before := fake.loads.Load()
		var wg sync.WaitGroup
		var retried atomic.Int64
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := http.Header{}
				if s.Reauthorize(context.Background(), h, "acme", "v1") {
					if _, tk := basicOf(t, h); tk == "t2" {
						retried.Add(1)
					}
				}
			}()
		}
		synctest.Wait()
		mu.Lock()
		blocking = false
		mu.Unlock()
		close(release)
		wg.Wait()
		if n := fake.loads.Load() - before; n != 1 {
			t.Errorf("%d reads for 20 concurrent 401s, want 1", n)
		}
		if retried.Load() != 20 {
			t.Errorf("%d of 20 retried with v2", retried.Load())
		}

		// Exotel rejects v2 (not propagated yet): the previous one, once.
		time.Sleep(3 * time.Second)
		h := http.Header{}
		if !s.Reauthorize(context.Background(), h, "acme", "v2") {
			t.Fatal("previous version not offered within the grace")
		}
		if _, tk := basicOf(t, h); tk != "t1" {
			t.Errorf("retried with %s, want the previous t1", tk)
		}

		// Forced re-reads are rate-limited per account.
		before = fake.loads.Load()
		s.Reauthorize(context.Background(), http.Header{}, "acme", "v2")
		if fake.loads.Load() != before {
			t.Error("a second forced read within MinForcedRefresh")
		}

		// Past the grace, the previous version is no longer offered.
		time.Sleep(11 * time.Minute)
		if s.Reauthorize(context.Background(), http.Header{}, "acme", "v2") {
			t.Error("previous version offered after the grace")
		}
	})
}

func TestEnvSourceNeverReauthorizes(t *testing.T) {
	s, err := NewStore([]Spec{{Account: "acme", Source: "env", APIKeyEnv: "K", APITokenEnv: "T"}}, env(map[string]string{"K": "k", "T": "t"}))
	if err != nil {
		t.Fatal(err)
	}
	if s.Reauthorize(context.Background(), http.Header{}, "acme", "env") {
		t.Error("env credentials cannot change: no retry")
	}
}

// A source that hangs (a Vault whose connections time out rather than being
// refused) holds the request that got Exotel's 401 for ReauthorizeWait at
// most, not for the source's own timeout: the caller gets Exotel's 401, the
// read goes on in the background, and what it finds serves later requests.
func TestReauthorizeWaitIsBoundedWhileTheSourceHangs(t *testing.T) {
	for _, tc := range []struct {
		name string
		wait time.Duration // ReauthorizeWait; 0: the default, 1s
	}{
		{"default", 0},
		{"configured", 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var logs bytes.Buffer
				s, err := New(Config{Accounts: []Spec{{Account: "acme", Source: "file", APIKeyFile: "k", APITokenFile: "t"}},
					RefreshInterval: time.Hour, MinForcedRefresh: time.Second, ReauthorizeWait: tc.wait, Logger: zerolog.New(&logs)})
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _ = s.Close(context.Background()) }()
				var mu sync.Mutex
				token, version := "t1", "v1"
				var hang chan struct{} // non-nil: load blocks until it is closed
				fake := &fakeSource{loadFn: func(ctx context.Context) (string, string, string, error) {
					mu.Lock()
					h := hang
					mu.Unlock()
					if h != nil {
						select {
						case <-h:
						case <-ctx.Done():
							return "", "", "", ctx.Err()
						}
					}
					mu.Lock()
					defer mu.Unlock()
					return "k", token, version, nil
				}}
				sl := s.accounts["acme"]
				sl.src = fake
				if err := s.refresh(context.Background(), sl); err != nil {
					t.Fatal(err)
				}

				// Rotated centrally, but the source now hangs.
				release := make(chan struct{})
				mu.Lock()
				token, version, hang = "t2", "v2", release
				mu.Unlock()
				time.Sleep(2 * time.Second) // past MinForcedRefresh

				want := tc.wait
				if want == 0 {
					want = time.Second
				}
				start := time.Now()
				type result struct {
					retry  bool
					waited time.Duration
				}
				done := make(chan result, 2)
				for range 2 { // two callers: one read, both bounded
					go func() {
						ok := s.Reauthorize(context.Background(), http.Header{}, "acme", "v1")
						done <- result{ok, time.Since(start)}
					}()
				}
				time.Sleep(want + time.Millisecond)
				synctest.Wait()
				for range 2 {
					select {
					case r := <-done:
						if r.retry {
							t.Error("offered a retry with nothing newer read")
						}
						if r.waited != want {
							t.Errorf("the caller waited %v, want ReauthorizeWait %v", r.waited, want)
						}
					default:
						t.Fatalf("a caller is still waiting for the hanging source after %v", want)
					}
				}
				if n := fake.loads.Load(); n != 2 {
					t.Errorf("%d loads, want the first and one forced read", n)
				}
				if n := strings.Count(logs.String(), "re-read forced by Exotel's 401 is slow"); n != 1 {
					t.Errorf("the slow re-read was logged %d times, want once: %s", n, logs.String())
				}

				// The read finishes in the background: later requests use v2.
				close(release)
				synctest.Wait()
				h := http.Header{}
				if v, _ := s.Authorize(h, "acme"); v != "v2" {
					t.Fatalf("after the background read: version %s, want v2", v)
				}
				if _, tk := basicOf(t, h); tk != "t2" {
					t.Errorf("token %s, want t2", tk)
				}
			})
		})
	}
}
