package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/fakeexotel"
	"github.com/exogate/exogate/internal/redistest"
	"github.com/exogate/exogate/internal/testutil"
)

// rotation is a fleet of gateways reading account acme's credentials from
// two files, and what `exogate rotate` needs to reach them.
type rotation struct {
	farm       *exotelFarm
	dir        string // the credential files
	cfg        string // the configuration file
	replicas   []*process
	admins     []string // the replicas' admin URLs
	adminToken string
}

const (
	rotKeyOld, rotTokenOld = "KOLD1234abcd5678", "token-old-0123456789abcdef"
	rotKeyNew, rotTokenNew = "KNEW9876wxyz5432", "token-new-9876543210fedcba"
)

// startRotation starts n replicas on one pair of credential files; extra
// is added to their configuration.
func startRotation(t *testing.T, n int, extra ...string) *rotation {
	t.Helper()
	if len(extra) == 0 {
		extra = []string{"limits:\n  buckets: {voice_v1: {limit: 100000, period: 1s, burst: 100}}"}
	}
	r := &rotation{farm: newFarm(t), dir: t.TempDir(), adminToken: strings.Repeat("a1", 20)}
	for _, f := range r.farm.fakes {
		f.SetAccount(fakeexotel.Account{SID: "acme", Key: rotKeyOld, Token: rotTokenOld})
	}
	r.write(t, rotKeyOld, rotTokenOld)
	tokenFile := writeFile(t, "admin-token", r.adminToken)
	r.cfg = writeFile(t, "exogate.yaml", fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0, token_file: %s}
log: {level: info, format: json}
upstream:
  ca_file: %s
  regions:
    singapore: {api: %q, ccm: %q}
rotation: {file_poll_interval: 1h, min_forced_refresh: 100ms}
accounts:
  - sid: acme
    region: singapore
    credentials: {source: file, api_key_file: %s, api_token_file: %s}
%s`, tokenFile, r.farm.caFile, r.farm.servers["singapore-api"].URL, r.farm.servers["singapore-ccm"].URL,
		filepath.Join(r.dir, "api_key"), filepath.Join(r.dir, "api_token"), strings.Join(extra, "\n")))
	for range n {
		p := startBinary(t, r.cfg)
		r.replicas, r.admins = append(r.replicas, p), append(r.admins, p.adminURL(t))
	}
	return r
}

func (r *rotation) write(t *testing.T, key, token string) {
	t.Helper()
	for name, v := range map[string]string{"api_key": key, "api_token": token} {
		if err := os.WriteFile(filepath.Join(r.dir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// pair reads the credential files.
func (r *rotation) pair(t *testing.T) string {
	t.Helper()
	k, _ := os.ReadFile(filepath.Join(r.dir, "api_key"))
	tk, _ := os.ReadFile(filepath.Join(r.dir, "api_token"))
	return strings.TrimSpace(string(k)) + ":" + strings.TrimSpace(string(tk))
}

// rotate runs `exogate rotate` with stdin and returns its output and exit
// code.
func (r *rotation) rotate(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(exogateBinary(t), append([]string{"rotate", "-config", r.cfg, "-account", "acme"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	_, _ = allLogs.Write(out.Bytes())
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{rotTokenOld, rotTokenNew, rotKeyNew, rotKeyOld, r.adminToken} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("rotate printed a secret (%s…)", secret[:4])
		}
	}
	return out.String(), code
}

// callLoad sends calls to every replica until stopped, counting failures.
type callLoad struct {
	total, failed atomic.Int64
	mu            sync.Mutex
	failures      []string
	stop          chan struct{}
	once          sync.Once
	wg            sync.WaitGroup
}

func startCallLoad(bases []string) *callLoad {
	l := &callLoad{stop: make(chan struct{})}
	for _, base := range bases {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			// Bounded: a guard of 20,000 calls or 3 minutes per replica.
			deadline := time.Now().Add(3 * time.Minute)
			for i := 0; i < 20_000 && time.Now().Before(deadline); i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := http.Post(base+"/v1/Accounts/acme/Calls/connect.json", "application/x-www-form-urlencoded", strings.NewReader("From=0999&To=0888&CallerId=0777"))
				l.total.Add(1)
				if err != nil || resp.StatusCode != 200 {
					l.failed.Add(1)
					l.mu.Lock()
					if err != nil {
						l.failures = append(l.failures, err.Error())
					} else {
						l.failures = append(l.failures, resp.Status)
					}
					l.mu.Unlock()
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

// finish stops the load and waits for it; calls after the first do
// nothing.
func (l *callLoad) finish() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// The operator's whole rotation on the file source, under load on two
// replicas: the new key and token work at Exotel (the old ones too, until
// deleted in the dashboard), rotate tests them, writes both files, asks
// both replicas to read them and prints each one's confirmation. No call
// fails.
func TestRotateFilesUnderLoad(t *testing.T) {
	t.Parallel()
	r := startRotation(t, 2)
	for _, f := range r.farm.fakes {
		f.AllowAlso(fakeexotel.Account{SID: "acme", Key: rotKeyNew, Token: rotTokenNew})
	}
	l := startCallLoad([]string{r.replicas[0].base, r.replicas[1].base})
	waitFor(t, func() bool { return l.total.Load() > 50 })

	out, code := r.rotate(t, rotKeyNew+"\n"+rotTokenNew+"\n", "-replicas", strings.Join(r.admins, ","))
	at := l.total.Load()
	waitFor(t, func() bool { return l.total.Load() > at+50 })
	l.finish()
	t.Logf("exogate rotate:\n%s", out)
	if code != 0 {
		t.Fatalf("rotate exited %d:\n%s", code, out)
	}
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d of %d calls failed across the rotation: %v", n, l.total.Load(), l.failures[:min(len(l.failures), 5)])
	}
	if got := r.pair(t); got != rotKeyNew+":"+rotTokenNew {
		t.Error("the files do not hold the new pair")
	}
	for _, want := range []string{
		"ok   acme (singapore): 200 OK: credentials are valid",
		"published file-",
		r.admins[0] + "  file-", r.admins[1] + "  file-",
		"every replica (2) uses file-",
		"the old key KOLD… (file-",
		"may now be deleted in Exotel's dashboard",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// After the rotation every call carries the new pair.
	newAuth := basicHeader(rotKeyNew, rotTokenNew)
	before := len(r.farm.fakes["singapore-api"].Requests())
	for _, p := range r.replicas {
		if resp, body := send(t, "GET", p.base+"/v1/Accounts/acme/Calls.json", "", nil); resp.StatusCode != 200 {
			t.Fatalf("after the rotation: %d %s", resp.StatusCode, body)
		}
	}
	for _, req := range r.farm.fakes["singapore-api"].Requests()[before:] {
		if req.Header.Get("Authorization") != newAuth {
			t.Error("a call after the confirmed rotation carried the old pair")
		}
	}
}

func basicHeader(key, token string) string {
	req, _ := http.NewRequest("GET", "http://x", nil)
	req.SetBasicAuth(key, token)
	return req.Header.Get("Authorization")
}

// A new pair Exotel refuses is not written: rotate stops after the test, in
// check's words, with exit 1. So is a pair given in a wrong form.
func TestRotateRefusesABadToken(t *testing.T) {
	t.Parallel()
	r := startRotation(t, 1)
	out, code := r.rotate(t, rotKeyNew+":"+rotTokenNew+"\n", "-replicas", r.admins[0])
	if code != 1 {
		t.Fatalf("rotate with a token Exotel refuses exited %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{"FAIL acme (singapore): 401 Unauthorized: authentication failed: verify the API key and API token", "nothing was written"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if r.pair(t) != rotKeyOld+":"+rotTokenOld {
		t.Error("the refused pair was written")
	}
	for _, stdin := range []string{"", "only-a-key\n", "key with space:token\n"} {
		if out, code := r.rotate(t, stdin, "-replicas", r.admins[0]); code != 1 || !strings.Contains(out, "rotate: the new API key") && !strings.Contains(out, "standard input ended") {
			t.Errorf("stdin %q: exit %d:\n%s", stdin, code, out)
		}
	}
	if r.pair(t) != rotKeyOld+":"+rotTokenOld {
		t.Error("bad input changed the files")
	}
}

// A replica that never confirms (stopped) makes rotate exit 2 naming it,
// after the others confirmed; the new pair stays in place.
func TestRotateNamesAReplicaThatDoesNotConfirm(t *testing.T) {
	t.Parallel()
	r := startRotation(t, 2)
	for _, f := range r.farm.fakes {
		f.AllowAlso(fakeexotel.Account{SID: "acme", Key: rotKeyNew, Token: rotTokenNew})
	}
	stopped := r.replicas[1]
	_ = stopped.cmd.Process.Signal(os.Interrupt)
	_ = stopped.cmd.Wait()
	out, code := r.rotate(t, rotKeyNew+"\n"+rotTokenNew+"\n", "-replicas", strings.Join(r.admins, ","), "-timeout", "3s")
	if code != 2 {
		t.Fatalf("rotate exited %d, want 2:\n%s", code, out)
	}
	for _, want := range []string{
		r.admins[0] + "  file-",
		"1 of 2 replicas did not confirm",
		r.admins[1] + " (unreachable",
		"stays published",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if r.pair(t) != rotKeyNew+":"+rotTokenNew {
		t.Error("the new pair was not left in place")
	}
}

// exogate check warns about a credential older than rotation.max_age (the
// files' modification time), and the warning does not fail the check.
func TestCheckWarnsAboutAnOldCredential(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	dir := t.TempDir()
	old := time.Now().Add(-40 * 24 * time.Hour)
	for name, v := range map[string]string{"k": acmeKey, "t": acmeToken} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	conf := func(maxAge string) string {
		return writeFile(t, "exogate.yaml", fmt.Sprintf(`admin: {listen: ""}
upstream:
  ca_file: %s
  regions: {singapore: {api: %q, ccm: %q}}
rotation: {max_age: %s}
accounts:
  - {sid: acme, credentials: {source: file, api_key_file: %s, api_token_file: %s}}
`, farm.caFile, farm.servers["singapore-api"].URL, farm.servers["singapore-ccm"].URL, maxAge, filepath.Join(dir, "k"), filepath.Join(dir, "t")))
	}
	for maxAge, warn := range map[string]bool{"720h": true, "2160h": false} {
		var out bytes.Buffer
		err := run(context.Background(), []string{"exogate", "check", "-config", conf(maxAge)}, func(string) string { return "" }, nil, &out, allLogs)
		if err != nil {
			t.Fatalf("max_age %s: %v\n%s", maxAge, err, out.String())
		}
		got := strings.Contains(out.String(), "warn acme: the credential in use (file file-") &&
			strings.Contains(out.String(), "was made 40 days ago, over rotation.max_age (30 days): rotate it with `exogate rotate`")
		if got != warn {
			t.Errorf("max_age %s: warned %v, want %v:\n%s", maxAge, got, warn, out.String())
		}
	}
}

// Exotel's propagation lag: the credential test passed, but for a while
// Exotel refuses the new token on live calls and takes the old one. Each
// replica replays such a call with the previous pair, so no call fails,
// and says so in /status; rotate waits, and confirms once Exotel accepts
// the new token everywhere.
func TestRotateWaitsWhileExotelTakesOnlyThePreviousToken(t *testing.T) {
	t.Parallel()
	r := startRotation(t, 2)
	api := r.farm.fakes["singapore-api"]
	api.AllowAlso(fakeexotel.Account{SID: "acme", Key: rotKeyNew, Token: rotTokenNew})
	newAuth := basicHeader(rotKeyNew, rotTokenNew)
	var tested, lagging atomic.Bool
	lagging.Store(true)
	api.SetOverride(func(req fakeexotel.Request) (int, string, bool) {
		if req.Header.Get("Authorization") != newAuth {
			return 0, "", false
		}
		if tested.CompareAndSwap(false, true) || !lagging.Load() {
			return 0, "", false // the credential test, and every call once Exotel caught up
		}
		return http.StatusUnauthorized, "", true
	})
	l := startCallLoad([]string{r.replicas[0].base, r.replicas[1].base})
	defer l.finish()
	waitFor(t, func() bool { return l.total.Load() > 20 })

	cmd := exec.Command(exogateBinary(t), "rotate", "-config", r.cfg, "-account", "acme", "-replicas", strings.Join(r.admins, ","), "-timeout", "2m")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader(rotKeyNew + ":" + rotTokenNew + "\n")
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	const waiting = "but Exotel still accepts only the previous version there: waiting"
	defer func() {
		t.Logf("rotate's output:\n%s\nfailures: %v", out.String(), l.failures[:min(len(l.failures), 5)])
	}()
	testutil.Eventually(t, 20*time.Second, "rotate waiting on Exotel", func() bool { return strings.Count(out.String(), waiting) == 2 })
	t.Log(out.String())
	select {
	case err := <-done:
		t.Fatalf("rotate ended while Exotel still refused the new token: %v\n%s", err, out.String())
	default:
	}
	var st struct {
		Accounts []struct {
			Credentials struct {
				PreviousAcceptedAt string `json:"previous_accepted_at"`
			} `json:"credentials"`
		} `json:"accounts"`
	}
	resp, body := send(t, "GET", r.admins[0]+"/status", "", nil)
	if err := json.Unmarshal([]byte(body), &st); resp.StatusCode != 200 || err != nil {
		t.Fatalf("/status: %d %v", resp.StatusCode, err)
	}
	if len(st.Accounts) != 1 || st.Accounts[0].Credentials.PreviousAcceptedAt == "" {
		t.Errorf("/status does not say Exotel accepts the previous token: %+v", st)
	}
	if v := value(scrape(t, r.admins[0]), "exogate_credentials_previous_accepted", map[string]string{"account": "acme"}); v != 1 {
		t.Errorf("exogate_credentials_previous_accepted = %v, want 1", v)
	}

	lagging.Store(false)
	var err error
	eventually(t, "rotate to end", func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	})
	_, _ = allLogs.Write([]byte(out.String()))
	if err != nil || !strings.Contains(out.String(), "every replica (2) uses file-") {
		t.Fatalf("rotate: %v\n%s", err, out.String())
	}
	l.finish()
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d of %d calls failed while Exotel lagged: %v", n, l.total.Load(), l.failures[:min(len(l.failures), 5)])
	}
}

// With limits.backend: redis, rotate finds the replicas through their
// heartbeats (each with its admin URL) and confirms every one.
func TestRotateFindsTheReplicasInRedis(t *testing.T) {
	t.Parallel()
	rds := redistest.Start(t)
	r := startRotation(t, 2, fmt.Sprintf(`limits:
  backend: redis
  redis: {address: %q, key_prefix: "rotate-e2e:", timeout: 2s}
  buckets: {voice_v1: {limit: 100000, period: 1s, burst: 100}}`, rds.Addr()))
	for _, f := range r.farm.fakes {
		f.AllowAlso(fakeexotel.Account{SID: "acme", Key: rotKeyNew, Token: rotTokenNew})
	}
	out, code := r.rotate(t, rotKeyNew+":"+rotTokenNew+"\n")
	if code != 0 {
		t.Fatalf("rotate exited %d:\n%s", code, out)
	}
	for _, want := range []string{r.admins[0] + "  file-", r.admins[1] + "  file-", "every replica (2) uses file-"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// A new token for the same key (or the same pair published again) leaves
// the key in use: rotate must not name it for deletion.
func TestRotateKeepsAnUnchangedKey(t *testing.T) {
	t.Parallel()
	r := startRotation(t, 1)
	for _, f := range r.farm.fakes {
		f.AllowAlso(fakeexotel.Account{SID: "acme", Key: rotKeyOld, Token: rotTokenNew})
	}
	out, code := r.rotate(t, rotKeyOld+"\n"+rotTokenNew+"\n", "-replicas", r.admins[0])
	if code != 0 {
		t.Fatalf("rotate exited %d:\n%s", code, out)
	}
	if strings.Contains(out, "may now be deleted") || !strings.Contains(out, "the key KOLD… is unchanged: keep it in Exotel's dashboard") {
		t.Errorf("rotate with the same key:\n%s", out)
	}
}
