package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// POST /-/refresh names an account in any case, as the API path does, but
// answers and tests the account by its configured SID: Exotel's
// credential test goes out under the SID the operator configured.
func TestSandboxRefreshUsesTheConfiguredSID(t *testing.T) {
	t.Parallel()
	p := startSandbox(t, "-accounts", "AcMe")
	resp, body := send(t, "POST", p.admin+"/-/refresh?account=acme", "", nil)
	var answer struct {
		SID  string `json:"sid"`
		Test int    `json:"test"`
	}
	if err := json.Unmarshal([]byte(body), &answer); resp.StatusCode != 200 || err != nil {
		t.Fatalf("refresh: %d %s (%v)", resp.StatusCode, body, err)
	}
	if answer.SID != "AcMe" || answer.Test != 200 {
		t.Errorf("refresh of acme answers sid %q, test %d; want AcMe, 200", answer.SID, answer.Test)
	}
	_, reqs := send(t, "GET", p.admin+"/sandbox/requests", "", nil)
	if !strings.Contains(reqs, `"/v1/Accounts/AcMe/Calls.json"`) || strings.Contains(reqs, `"/v1/Accounts/acme/Calls.json"`) {
		t.Errorf("the credential test did not go out as /v1/Accounts/AcMe/Calls.json: %s", reqs)
	}
}

// A repeated account parameter is refused, and refreshes nothing: the
// account's next refresh is not paced by it.
func TestSandboxRefreshRefusesARepeatedAccount(t *testing.T) {
	t.Parallel()
	p := startSandbox(t, "-accounts", "acme,beta")
	for _, q := range []string{"account=acme&account=beta", "account=acme&account=nobody", "account=acme&account=acme"} {
		resp, body := send(t, "POST", p.admin+"/-/refresh?"+q, "", nil)
		if resp.StatusCode != 400 || !strings.Contains(body, "once") {
			t.Errorf("refresh?%s: %d %s; want 400 naming the account once", q, resp.StatusCode, body)
		}
	}
	for _, sid := range []string{"acme", "beta"} {
		if resp, body := send(t, "POST", p.admin+"/-/refresh?account="+sid, "", nil); resp.StatusCode != 200 {
			t.Errorf("refresh of %s after the refused ones: %d %s", sid, resp.StatusCode, body)
		}
	}
}
