package main

import (
	"io"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/testutil"
)

// Bad -ring and -route values are refused with the flag's name, rather
// than silently replaced (a -ring of 0 or below used to mean 2s) or
// reported as a config key the user never wrote.
func TestSandboxFlagsRefuseBadValues(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-ring", "0"}, "-ring"},
		{[]string{"-ring", "-1s"}, "-ring"},
		{[]string{"-ring", "10000h"}, "-ring"},
		{[]string{"-route", "calls"}, "-route"},
		{[]string{"-route", "=http://127.0.0.1:9000/"}, "-route"},
		{[]string{"-route", "calls="}, "-route"},
		{[]string{"-sms-route", "sms"}, "-sms-route"},
	} {
		if _, err := parseSandboxFlags(c.args, io.Discard); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error naming %s", c.args, err, c.want)
		}
	}
	f, err := parseSandboxFlags([]string{"-ring", "1h", "-seed", "-5", "-route", "calls=http://127.0.0.1:9000/x=y"}, io.Discard)
	if err != nil || f.ring != time.Hour || f.seed != -5 || len(f.routes) != 1 {
		t.Errorf("%+v %v", f, err)
	}
}

// A StatusCallback at the sandbox's own API or admin listener is not sent:
// it would reach the admin endpoints, or place a call per callback without
// end. The calls placed stay the two asked for.
func TestSandboxCallbacksStayOffItsOwnListeners(t *testing.T) {
	t.Parallel()
	p := startSandbox(t)
	for _, cb := range []string{p.admin + "/-/refresh?account=acme", p.base + "/v1/Accounts/acme/Calls/connect.json?From=1&To=2&CallerId=3"} {
		form := url.Values{"From": {"1"}, "To": {"09000000001"}, "CallerId": {"3"}, "StatusCallback": {cb}}
		if code, b := p.post(t, "/v1/Accounts/acme/Calls/connect.json", form); code != 200 {
			t.Fatalf("%s: %d %s", cb, code, b)
		}
	}
	waitFor(t, func() bool { return strings.Count(p.logs.String(), "own listeners") == 2 })
	resp, body := send(t, "GET", p.base+"/v1/Accounts/acme/Calls.json", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"Total":2`) {
		t.Errorf("calls: %d %.300s", resp.StatusCode, body)
	}
}

// -accounts errors name the flag and the item, not a configuration key the
// sandbox user never wrote.
func TestSandboxAccountsFlag(t *testing.T) {
	for _, c := range []struct{ list, want string }{
		{"", "-accounts names no account"},
		{" , ", "-accounts names no account"},
		{"a b", `-accounts: "a b" is not an account SID`},
		{"../x", `-accounts: "../x" is not an account SID`},
		{":mumbai", `-accounts: "" is not an account SID`},
		{"acme:tokyo", `-accounts: acme: region "tokyo" is not singapore or mumbai`},
		{"acme,ACME:mumbai", `-accounts: "ACME" is named twice`},
	} {
		if _, err := sandboxAccounts(c.list); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.list, err, c.want)
		}
	}
	got, err := sandboxAccounts("acme, bolt1m:mumbai")
	if err != nil || len(got) != 2 || got[0].SID != "acme" || got[0].Region != "singapore" || got[1].SID != "bolt1m" || got[1].Region != "mumbai" {
		t.Errorf("%+v %v", got, err)
	}
}

// The container image sets EXOGATE_LISTEN (and an operator may set
// EXOGATE_ADMIN_LISTEN): `docker run … exogate sandbox` listens where they
// say, with no flag.
func TestSandboxListensWhereTheEnvironmentSays(t *testing.T) {
	t.Parallel()
	listen, admin := freeAddr(t), freeAddr(t)
	cmd := exec.Command(exogateBinary(t), "sandbox", "-ring", "20ms")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "EXOGATE_LISTEN=" + listen, "EXOGATE_ADMIN_LISTEN=" + admin}
	logs := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitStatus(t, "http://"+listen+"/readyz", 200)
	waitStatus(t, "http://"+admin+"/readyz", 200)
	resp, body := send(t, "POST", "http://"+listen+"/v1/Accounts/acme/Calls/connect.json", "From=1&To=2&CallerId=3",
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if resp.StatusCode != 200 || !strings.Contains(body, `"Call"`) {
		t.Errorf("connect: %d %s\n%s", resp.StatusCode, body, logs.String())
	}
}
