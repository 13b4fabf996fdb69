package vault

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exogate/exogate/credentials"
	"github.com/exogate/exogate/internal/fakeexotel"
	"github.com/exogate/exogate/internal/testutil"
	"github.com/exogate/exogate/proxy"
)

// load drives steady traffic at a gateway from a few clients until the test
// stops it, counting failures. It must not run dry while the test still
// counts on it (a fixed number of requests did, during a seal), so it only
// ends by itself as a guard, after loadGuardTime or loadGuardCount requests
// per client, and finish fails the test if it did.
type load struct {
	total, failed atomic.Int64
	mu            sync.Mutex
	failures      []string
	stop          chan struct{}
	guard         context.Context // ends after loadGuardTime
	endGuard      context.CancelFunc
	ranDry        atomic.Bool
	wg            sync.WaitGroup
}

const (
	loadGuardTime  = 3 * time.Minute
	loadGuardCount = 20_000_000
)

func startLoad(base, path string, clients int) *load {
	l := &load{stop: make(chan struct{})}
	l.guard, l.endGuard = context.WithTimeout(context.Background(), loadGuardTime)
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				case <-l.guard.Done():
					l.ranDry.Store(true)
					return
				default:
				}
				if i == loadGuardCount {
					l.ranDry.Store(true)
					return
				}
				resp, err := http.Post(base+path, "application/x-www-form-urlencoded", strings.NewReader("From=0999&To=0888&CallerId=0777"))
				l.total.Add(1)
				switch {
				case err != nil:
					l.fail(err.Error())
				case resp.StatusCode != http.StatusOK:
					l.fail(resp.Status + " " + resp.Header.Get("X-Exogate-Error"))
				}
				if resp != nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	return l
}

func (l *load) fail(s string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.failures) < 10 {
		l.failures = append(l.failures, s)
	}
	l.mu.Unlock()
}

// finish stops the load and waits for its clients; the test fails if the
// load had stopped by itself before.
func (l *load) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	l.endGuard()
	if l.ranDry.Load() {
		t.Errorf("the load stopped by itself (guard of %v or %d requests per client) before the test stopped it", loadGuardTime, loadGuardCount)
	}
}

// A sealed Vault must not fail a single call: the last good credentials keep
// serving, and after unsealing a new version is picked up.
func TestSealedVaultFailsNoCall(t *testing.T) {
	v := startVault(t)
	v.putPair(t, acmePath, "seal-key-1234", "seal-token-1")
	roleID, secretID := v.appRole(t, "exogate", time.Hour, time.Hour)
	store, logs := newStore(t, v, credentials.VaultAuth{Method: "approle", RoleIDEnv: "R", SecretIDEnv: "S"},
		map[string]string{"R": roleID, "S": secretID}, credentials.VaultSecret{})
	waitVersion(t, store, "v1")

	fake := fakeexotel.New("exotel", fakeexotel.Account{SID: "acme", Key: "seal-key-1234", Token: "seal-token-1"})
	upstream := httptest.NewTLSServer(fake)
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	h, err := proxy.New(proxy.Config{
		Accounts:   []proxy.Account{{SID: "acme", API: u, CCM: u}},
		Authorizer: store,
		Transport:  upstream.Client().Transport,
		Logger:     newLogger(),
	})
	must(t, err)
	gw := httptest.NewServer(h)
	defer gw.Close()

	l := startLoad(gw.URL, "/v1/Accounts/acme/Calls/connect.json", 4)
	waitFor(t, 10*time.Second, func() bool { return l.total.Load() > 20 })
	v.cluster.EnsureCoresSealed(t)
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(logs.String(), "cannot read the source") })
	sealedAt := l.total.Load()
	waitFor(t, 20*time.Second, func() bool { return l.total.Load() > sealedAt+200 })
	v.cluster.UnsealCores(t)
	l.finish(t)
	if n := l.failed.Load(); n != 0 {
		t.Fatalf("%d of %d calls failed while Vault was sealed: %v", n, l.total.Load(), l.failures)
	}
	t.Logf("sealed Vault: %d calls, %d failed (%d while sealed)", l.total.Load(), l.failed.Load(), l.total.Load()-sealedAt)

	// After unsealing, a rotation is picked up again.
	waitFor(t, 30*time.Second, func() bool {
		_, err := v.root.KVv2("secret").Get(context.Background(), acmePath)
		return err == nil
	})
	v.putPair(t, acmePath, "seal-key-1234", "seal-token-2")
	waitVersion(t, store, "v2")
}

var addrRE = regexp.MustCompile(`"addr":"([^"]+)"`)

// The whole story end to end with the built binary: steady traffic, the token
// is rotated in Vault and at the same instant the fake Exotel stops accepting
// the old one: no client call may fail. Then Vault is sealed and Exotel
// refuses the current token once: the 401 forces a Vault read, which fails;
// that one call gets Exotel's 401, every other call is served with the last
// good credentials, and the failure is logged once.
func TestBinaryRotationUnderLoad(t *testing.T) {
	bin := exogateBinary(t)

	v := startVault(t)
	const key, oldToken, newToken = "e2e-key-0123456789", "e2e-token-old-0123456789", "e2e-token-new-0123456789"
	v.putPair(t, acmePath, key, oldToken)
	roleID, secretID := v.appRole(t, "exogate", time.Minute, time.Hour)
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "secret_id"), []byte(secretID), 0o600))

	fake := fakeexotel.New("exotel", fakeexotel.Account{SID: "acme", Key: key, Token: oldToken})
	upstream := httptest.NewTLSServer(fake)
	defer upstream.Close()
	caFile := filepath.Join(dir, "exotel-ca.pem")
	must(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: upstream.Certificate().Raw}), 0o600))

	// A refresh interval far longer than the test: only the 401 path can
	// pick up the rotation in time.
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: "127.0.0.1:0"}
upstream:
  ca_file: %s
  regions: {singapore: {api: %q, ccm: %q}}
vault:
  address: %s
  ca_file: %s
  refresh_interval: 1h
  auth: {method: approle, role_id_env: EXOGATE_ROLE_ID, secret_id_file: %s}
rotation: {min_forced_refresh: 100ms}
limits:
  buckets: {voice_v1: {limit: 100000, period: 1s, burst: 100}}
accounts:
  - sid: acme
    credentials: {source: vault, vault: {mount: secret, path: %s}}
`, caFile, upstream.URL, upstream.URL, v.addr, v.caFile, filepath.Join(dir, "secret_id"), acmePath)
	cfgFile := filepath.Join(dir, "exogate.yaml")
	must(t, os.WriteFile(cfgFile, []byte(cfg), 0o600))

	cmd := exec.Command(bin, "-config", cfgFile)
	cmd.Env = []string{"EXOGATE_ROLE_ID=" + roleID, "PATH=" + os.Getenv("PATH")}
	out, err := cmd.StderrPipe()
	must(t, err)
	must(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	logs := &testutil.SyncBuffer{}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text() + "\n"
			_, _ = logs.Write([]byte(line))
			_, _ = allLogs.Write([]byte(line))
		}
	}()
	var base string
	waitFor(t, 20*time.Second, func() bool {
		if m := addrRE.FindStringSubmatch(logs.String()); m != nil {
			base = "http://" + m[1]
		}
		return base != ""
	})
	waitFor(t, 30*time.Second, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	l := startLoad(base, "/v1/Accounts/acme/Calls/connect.json", 4)
	waitFor(t, 10*time.Second, func() bool { return fake.Count() > 100 })
	// Rotate centrally: Vault gets the new token and Exotel switches to it at
	// the same instant.
	v.putPair(t, acmePath, key, newToken)
	fake.SetAccount(fakeexotel.Account{SID: "acme", Key: key, Token: newToken})
	rotated := time.Now()
	at := fake.Count()
	waitFor(t, 20*time.Second, func() bool { return fake.Count() > at+300 })
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d client calls failed across the rotation: %v", n, l.failures)
	}

	// Then Vault is sealed, and Exotel refuses the current token once.
	newAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"+newToken))
	sealing := time.Now()
	v.cluster.EnsureCoresSealed(t)
	var refusals atomic.Int64
	fake.SetOverride(func(r fakeexotel.Request) (int, string, bool) {
		if r.Header.Get("Authorization") == newAuth && refusals.CompareAndSwap(0, 1) {
			return http.StatusUnauthorized, "", true
		}
		return 0, "", false
	})
	const readFailed = "cannot read the source"
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(logs.String(), readFailed) })
	at = fake.Count()
	waitFor(t, 20*time.Second, func() bool { return fake.Count() > at+300 })
	v.cluster.UnsealCores(t)
	l.finish(t)

	// Exactly the refused call failed, with Exotel's own 401.
	if n := l.failed.Load(); n != 1 || l.failures[0] != "401 Unauthorized " {
		t.Errorf("%d client calls failed (%v), want the one Exotel refused, with its 401", n, l.failures)
	}
	var servedSealed int
	for _, r := range fake.Requests() {
		if r.At.After(sealing) && r.Header.Get("Authorization") == newAuth {
			servedSealed++
		}
	}
	if servedSealed < 300 {
		t.Errorf("%d requests with the last good token while Vault was sealed", servedSealed)
	}
	if n := strings.Count(logs.String(), readFailed); n != 1 {
		t.Errorf("the failed Vault read was logged %d times, want once", n)
	}

	var refused int
	var firstNew time.Duration
	for _, r := range fake.Requests() {
		if r.At.Before(rotated) || !r.At.Before(sealing) {
			continue
		}
		if r.Header.Get("Authorization") == newAuth {
			if firstNew == 0 {
				firstNew = r.At.Sub(rotated)
			}
		} else {
			refused++
		}
	}
	t.Logf("Vault rotation under load (binary): %d client calls, %d failed; %d requests met Exotel's 401 with the old token (each replayed); first use of the new token %v after rotation; %d served with it while Vault was sealed",
		l.total.Load(), l.failed.Load(), refused, firstNew, servedSealed)
	if firstNew == 0 {
		t.Error("the new token was never used")
	}
	if refused > 4 {
		t.Errorf("%d requests were sent with the old token after the rotation; at most the 4 in flight may be", refused)
	}

	// Graceful shutdown revokes the AppRole token exogate logged in with.
	must(t, cmd.Process.Signal(os.Interrupt))
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(logs.String(), "vault: token revoked") })
}

// With Vault hanging (its connections accepted and never answered) and
// Exotel answering 401, the caller is not held for vault.timeout by the
// re-read the 401 forces: after rotation.reauthorize_wait it gets Exotel's
// 401 while the read is still blocked. The read goes on in the background,
// and once Vault answers, what it read serves the next request at once.
func TestHangingVaultHoldsNoCaller(t *testing.T) {
	v := startVault(t)
	const key, oldToken, newToken = "hang-key-0123456789", "hang-token-old-0123", "hang-token-new-0123"
	v.putPair(t, acmePath, key, oldToken)
	tok := v.token(t, time.Hour)
	vu, err := url.Parse(v.addr)
	must(t, err)
	r := startRelay(t, vu.Host)
	logs := &testutil.SyncBuffer{}
	store := startStore(t, credentials.Config{
		Accounts: []credentials.Spec{{Account: "acme", Source: "vault", Vault: credentials.VaultSecret{Path: acmePath}}},
		Vault: credentials.VaultConfig{Address: "https://" + r.addr(), CAFile: v.caFile,
			Auth: credentials.VaultAuth{Method: "token"}, Timeout: 5 * time.Minute},
		RefreshInterval:  time.Hour,
		MinForcedRefresh: 100 * time.Millisecond,
		ReauthorizeWait:  200 * time.Millisecond,
		Getenv:           func(k string) string { return map[string]string{"VAULT_TOKEN": tok}[k] },
		Logger:           newLogger(logs),
	}, logs)
	waitVersion(t, store, "v1")

	fake := fakeexotel.New("exotel", fakeexotel.Account{SID: "acme", Key: key, Token: oldToken})
	upstream := httptest.NewTLSServer(fake)
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	h, err := proxy.New(proxy.Config{
		Accounts:   []proxy.Account{{SID: "acme", API: u, CCM: u}},
		Authorizer: store,
		Transport:  upstream.Client().Transport,
		Logger:     newLogger(logs),
	})
	must(t, err)
	gw := httptest.NewServer(h)
	defer gw.Close()
	call := func() (*http.Response, error) {
		resp, err := http.Post(gw.URL+"/v1/Accounts/acme/Calls/connect.json", "application/x-www-form-urlencoded",
			strings.NewReader("From=0999&To=0888&CallerId=0777"))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}

	// Vault starts hanging; the token is rotated in Vault and at Exotel.
	r.hang()
	v.putPair(t, acmePath, key, newToken)
	fake.SetAccount(fakeexotel.Account{SID: "acme", Key: key, Token: newToken})

	type answer struct {
		resp *http.Response
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := call()
		got <- answer{resp, err}
	}()
	var a answer
	waitFor(t, 60*time.Second, func() bool {
		select {
		case a = <-got:
			return true
		default:
			return false
		}
	})
	if a.err != nil {
		t.Fatal(a.err)
	}
	if a.resp.StatusCode != http.StatusUnauthorized || a.resp.Header.Get("X-Exogate-Error") != "" {
		t.Errorf("caller got %s (X-Exogate-Error %q), want Exotel's own 401", a.resp.Status, a.resp.Header.Get("X-Exogate-Error"))
	}
	// The forced read reached the hanging Vault and is still blocked there:
	// it neither failed nor read anything.
	if r.heldCount() == 0 {
		t.Fatal("the forced re-read never reached Vault")
	}
	if n := store.RefreshErrors("acme"); n != 0 {
		t.Errorf("%d failed reads: the re-read ended instead of waiting in the background", n)
	}
	if c := store.Current("acme"); c.Version() != "v1" {
		t.Errorf("version %s while Vault hangs, want v1", c.Version())
	}

	// Vault answers again: the read that was waiting completes, and the next
	// request goes out with the new token at its first try.
	r.release()
	waitVersion(t, store, "v2")
	before := len(fake.Requests())
	resp, err := call()
	must(t, err)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after Vault answered: %s", resp.Status)
	}
	newAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"+newToken))
	if sent := fake.Requests()[before:]; len(sent) != 1 || sent[0].Header.Get("Authorization") != newAuth {
		t.Errorf("%d requests reached Exotel, want one with the new token", len(sent))
	}
}
