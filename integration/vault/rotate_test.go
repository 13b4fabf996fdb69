package vault

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/exogate/exogate/internal/fakeexotel"
	"github.com/exogate/exogate/internal/testutil"
)

// exogateBinary builds the gateway once for the suite.
func exogateBinary(t *testing.T) string { return testutil.Binary(t, "../..") }

// rotatorPolicy is the README's rotator policy: write the secret's new
// versions, read its current and previous ones and its metadata.
const rotatorPolicy = `
path "secret/data/exotel/*" { capabilities = ["create", "update", "read"] }
path "secret/metadata/exotel/*" { capabilities = ["read"] }
`

const (
	vKeyOld, vTokenOld = "VOLDkey-0123456789", "vault-token-old-0123456789"
	vKeyNew, vTokenNew = "VNEWkey-9876543210", "vault-token-new-9876543210"
)

// vaultFleet is a Vault, a fake Exotel, and replicas of the gateway reading
// acme's pair from KV v2 with a refresh interval far longer than any test,
// so that only `exogate rotate` makes them read the new version.
type vaultFleet struct {
	v        *testVault
	fake     *fakeexotel.Server
	cfg      string
	bases    []string // the replicas' proxy URLs
	admins   []string // their admin URLs
	cmds     []*exec.Cmd
	rotator  string // the operator's Vault token
	readOnly string // the replicas' Vault token
}

var adminAddrRE = regexp.MustCompile(`"admin_addr":"([^"]+)"`)

func startVaultFleet(t *testing.T, replicas int) *vaultFleet {
	t.Helper()
	f := &vaultFleet{v: startVault(t)}
	// The secret holds a field besides the pair; a rotation keeps it.
	secrets.add(vKeyOld, vTokenOld, vKeyNew, vTokenNew)
	_, err := f.v.root.KVv2("secret").Put(context.Background(), acmePath, map[string]any{"api_key": vKeyOld, "api_token": vTokenOld, "owner": "payments"})
	must(t, err)
	must(t, f.v.root.Sys().PutPolicy("rotator", rotatorPolicy))
	f.readOnly = f.v.token(t, time.Hour)
	s, err := f.v.root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"rotator"}, TTL: "1h"})
	must(t, err)
	f.rotator = s.Auth.ClientToken
	secrets.add(f.rotator)

	f.fake = fakeexotel.New("exotel", fakeexotel.Account{SID: "acme", Key: vKeyOld, Token: vTokenOld})
	upstream := httptest.NewTLSServer(f.fake)
	t.Cleanup(upstream.Close)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "exotel-ca.pem")
	must(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: upstream.Certificate().Raw}), 0o600))
	f.cfg = filepath.Join(dir, "exogate.yaml")
	must(t, os.WriteFile(f.cfg, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
admin: {listen: "127.0.0.1:0"}
upstream:
  ca_file: %s
  regions: {singapore: {api: %q, ccm: %q}}
vault:
  address: %s
  ca_file: %s
  refresh_interval: 1h
rotation: {min_forced_refresh: 100ms}
limits:
  buckets: {voice_v1: {limit: 100000, period: 1s, burst: 100}}
accounts:
  - sid: acme
    credentials: {source: vault, vault: {mount: secret, path: %s}}
`, caFile, upstream.URL, upstream.URL, f.v.addr, f.v.caFile, acmePath)), 0o600))
	for range replicas {
		f.start(t)
	}
	return f
}

// start runs one more replica and waits until it is ready.
func (f *vaultFleet) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(exogateBinary(t), "-config", f.cfg)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "VAULT_TOKEN=" + f.readOnly}
	logs := &testutil.SyncBuffer{}
	out := io.MultiWriter(logs, allLogs)
	cmd.Stdout, cmd.Stderr = out, out
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var base, admin string
	waitFor(t, 30*time.Second, func() bool {
		if m := addrRE.FindStringSubmatch(logs.String()); m != nil {
			base = "http://" + m[1]
		}
		if m := adminAddrRE.FindStringSubmatch(logs.String()); m != nil {
			admin = "http://" + m[1]
		}
		return base != "" && admin != ""
	})
	waitFor(t, 30*time.Second, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	f.bases, f.admins, f.cmds = append(f.bases, base), append(f.admins, admin), append(f.cmds, cmd)
}

// rotate runs `exogate rotate` as the operator and returns its output and
// exit code.
func (f *vaultFleet) rotate(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(exogateBinary(t), append([]string{"rotate", "-config", f.cfg, "-account", "acme", "-replicas", strings.Join(f.admins, ",")}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "VAULT_TOKEN=" + f.rotator}
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	_, _ = allLogs.Write(out.Bytes()) // checked for secrets by TestMain
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode()
	}
	must(t, err)
	return out.String(), 0
}

// current returns the secret's current version and data.
func (f *vaultFleet) current(t *testing.T) (int, map[string]any) {
	t.Helper()
	s, err := f.v.root.KVv2("secret").Get(context.Background(), acmePath)
	must(t, err)
	return s.VersionMetadata.Version, s.Data
}

func basicAuthOf(key, token string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"+token))
}

func wantLines(t *testing.T, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, l) {
			t.Errorf("output lacks %q:\n%s", l, out)
		}
	}
}

// The whole rotation against a real Vault and two binaries under load: the
// operator's token with the rotator policy writes version 2 (keeping the
// secret's other fields), both replicas confirm it, no call fails, and the
// old key is named for deletion. Then a rollback publishes version 1's pair
// as version 3, confirmed the same way.
func TestRotateVaultUnderLoadThenRollback(t *testing.T) {
	f := startVaultFleet(t, 2)
	f.fake.AllowAlso(fakeexotel.Account{SID: "acme", Key: vKeyNew, Token: vTokenNew})
	loads := []*load{startLoad(f.bases[0], "/v1/Accounts/acme/Calls/connect.json", 2), startLoad(f.bases[1], "/v1/Accounts/acme/Calls/connect.json", 2)}
	waitFor(t, 20*time.Second, func() bool { return f.fake.Count() > 50 })

	out, code := f.rotate(t, vKeyNew+"\n"+vTokenNew+"\n")
	at := f.fake.Count()
	waitFor(t, 20*time.Second, func() bool { return f.fake.Count() > at+50 })
	for _, l := range loads {
		l.finish(t)
		if n := l.failed.Load(); n != 0 {
			t.Errorf("%d of %d calls failed across the rotation: %v", n, l.total.Load(), l.failures)
		}
	}
	t.Logf("exogate rotate:\n%s", out)
	if code != 0 {
		t.Fatalf("rotate exited %d", code)
	}
	wantLines(t, out, "current credentials at secret/data/exotel/acme: v1 (key VOLD…)",
		"ok   acme (singapore): 200 OK", "published v2 to secret/data/exotel/acme",
		f.admins[0]+"  v2  since", f.admins[1]+"  v2  since",
		"every replica (2) uses v2 for acme", "the old key VOLD… (v1) may now be deleted in Exotel's dashboard")
	version, data := f.current(t)
	if version != 2 || data["api_key"] != vKeyNew || data["api_token"] != vTokenNew || data["owner"] != "payments" {
		t.Errorf("Vault holds version %d with fields %v", version, keys(data))
	}
	newAuth := basicAuthOf(vKeyNew, vTokenNew)
	before := len(f.fake.Requests())
	for _, base := range f.bases {
		resp, err := http.Get(base + "/v1/Accounts/acme/Calls.json")
		must(t, err)
		resp.Body.Close()
	}
	for _, r := range f.fake.Requests()[before:] {
		if r.Header.Get("Authorization") != newAuth {
			t.Error("a call after the confirmed rotation carried the old pair")
		}
	}

	out, code = f.rotate(t, "", "-rollback")
	if code != 0 {
		t.Fatalf("rollback exited %d:\n%s", code, out)
	}
	wantLines(t, out, "rolling back to the pair of v1", "published v3", f.admins[0]+"  v3  since", f.admins[1]+"  v3  since",
		"the old key VNEW… (v2) may now be deleted")
	if version, data := f.current(t); version != 3 || data["api_key"] != vKeyOld || data["api_token"] != vTokenOld {
		t.Errorf("after the rollback Vault holds version %d", version)
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A pair Exotel refuses is never written: version 1 stays current, exit 1.
func TestRotateVaultRefusesABadToken(t *testing.T) {
	f := startVaultFleet(t, 1)
	out, code := f.rotate(t, vKeyNew+":"+vTokenNew+"\n")
	if code != 1 {
		t.Fatalf("rotate exited %d, want 1:\n%s", code, out)
	}
	wantLines(t, out, "FAIL acme (singapore): 401 Unauthorized", "nothing was written")
	if version, _ := f.current(t); version != 1 {
		t.Errorf("Vault is at version %d after a refused rotation", version)
	}
}

// Another writer publishes while rotate tests its pair: rotate's
// check-and-set write fails, it says so and exits 1, and the other
// writer's version stays current.
func TestRotateVaultLosesCleanlyToAConcurrentWriter(t *testing.T) {
	f := startVaultFleet(t, 1)
	f.fake.AllowAlso(fakeexotel.Account{SID: "acme", Key: vKeyNew, Token: vTokenNew})
	newAuth := basicAuthOf(vKeyNew, vTokenNew)
	var once sync.Once
	var putErr error
	secrets.add("other-token-0123456789")
	f.fake.SetOverride(func(r fakeexotel.Request) (int, string, bool) {
		if r.Header.Get("Authorization") == newAuth {
			// The credential test is under way: another rotation publishes.
			once.Do(func() {
				_, putErr = f.v.root.KVv2("secret").Put(context.Background(), acmePath,
					map[string]any{"api_key": "OTHERkey-0123456", "api_token": "other-token-0123456789"})
			})
		}
		return 0, "", false
	})
	out, code := f.rotate(t, vKeyNew+"\n"+vTokenNew+"\n")
	must(t, putErr)
	if code != 1 {
		t.Fatalf("rotate exited %d, want 1:\n%s", code, out)
	}
	wantLines(t, out, "another rotation wrote first", "nothing was written")
	if version, data := f.current(t); version != 2 || data["api_key"] != "OTHERkey-0123456" {
		t.Errorf("Vault holds version %d (%v), want the other writer's 2", version, data["api_key"] == vKeyNew)
	}
}
