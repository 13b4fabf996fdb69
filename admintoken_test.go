package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// adminToken is the test's admin bearer token; adminToken2 the rotated one.
const (
	adminToken  = "5f0c8e2a9b7d4c1e6a3f8b2d7c4e1a9f0b6d3c8e5a2f7b4d1c9e6a3f8b5d2c7e"
	adminToken2 = "d2c7e5a2f7b4d1c9e6a3f8b5d5f0c8e2a9b7d4c1e6a3f8b2d7c4e1a9f0b6d3c8"
)

// The admin listener's POST /-/reload on the built binary: without the
// token of admin.token_file (or with a wrong one, or another scheme) it is
// 401 with WWW-Authenticate: Bearer, even on loopback; GET endpoints and
// `exogate health` need no token; with the token it reloads, and a second
// reload within admin.min_reload_interval is 429 with Retry-After. The
// token file is read at each request: after it is rotated the old token is
// refused. The token appears in no log line.
func TestAdminTokenOnTheBinary(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	tokenFile := writeFile(t, "admin-token", adminToken+"\n")
	cfgText := strings.Replace(farm.config(""), "admin: {listen: 127.0.0.1:0}",
		"admin: {listen: 127.0.0.1:0, token_file: "+tokenFile+", min_reload_interval: 1h}", 1)
	cfgFile := writeFile(t, "exogate.yaml", cfgText)
	p := startBinary(t, cfgFile)
	admin := p.adminURL(t)

	reload := func(auth string) (code int, hdr func(string) string, body string) {
		t.Helper()
		h := map[string]string{}
		if auth != "" {
			h["Authorization"] = auth
		}
		resp, body := send(t, "POST", admin+"/-/reload", "", h)
		return resp.StatusCode, resp.Header.Get, body
	}
	for name, auth := range map[string]string{
		"no token":        "",
		"wrong token":     "Bearer " + adminToken2,
		"token prefix":    "Bearer " + adminToken[:32],
		"basic":           "Basic " + basicOf("admin", adminToken)[6:],
		"token as scheme": adminToken,
	} {
		code, hdr, body := reload(auth)
		if code != 401 || !strings.HasPrefix(hdr("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: %d %q WWW-Authenticate %q, want 401 with a Bearer challenge", name, code, body, hdr("WWW-Authenticate"))
		}
	}
	// Other methods on GET endpoints need the token too.
	if resp, _ := send(t, "DELETE", admin+"/status", "", nil); resp.StatusCode != 401 {
		t.Errorf("DELETE /status without a token: %d, want 401", resp.StatusCode)
	}
	for _, path := range []string{"/readyz", "/healthz", "/metrics", "/status"} {
		if resp, _ := send(t, "GET", admin+path, "", nil); resp.StatusCode != 200 {
			t.Errorf("GET %s without a token: %d, want 200", path, resp.StatusCode)
		}
	}
	// The container HEALTHCHECK finds the admin listener from the file and
	// needs no token.
	getenv := func(k string) string {
		return map[string]string{"EXOGATE_ADMIN_LISTEN": strings.TrimPrefix(admin, "http://")}[k]
	}
	if err := run(t.Context(), []string{"exogate", "health", "-config", cfgFile}, getenv, nil, &strings.Builder{}, &strings.Builder{}); err != nil {
		t.Errorf("exogate health: %v", err)
	}

	if code, _, body := reload("Bearer " + adminToken); code != 200 {
		t.Fatalf("reload with the token: %d %q", code, body)
	}
	code, hdr, body := reload("bearer  " + adminToken)
	ra, _ := strconv.Atoi(hdr("Retry-After"))
	if code != 429 || ra < 1 || ra > 3600 || !strings.Contains(body, "admin.min_reload_interval") {
		t.Errorf("second reload within the hour: %d %q Retry-After %q, want 429 with Retry-After in (0, 3600]", code, body, hdr("Retry-After"))
	}

	// Rotation: the file is read at each request.
	if err := os.WriteFile(tokenFile, []byte(adminToken2), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := reload("Bearer " + adminToken); code != 401 {
		t.Errorf("the old token after rotation: %d, want 401", code)
	}
	if code, _, _ := reload("Bearer " + adminToken2); code != 429 {
		t.Errorf("the new token after rotation: %d, want 429 (authenticated, still limited)", code)
	}

	fams := scrape(t, admin)
	if got := value(fams, "exogate_config_reloads_total", nil); got != 1 {
		t.Errorf("exogate_config_reloads_total = %v, want 1 (refused requests are not reloads)", got)
	}
	if !strings.Contains(p.logs.String(), "refused a request without the admin token") {
		t.Error("no log line for the refused admin requests")
	}
	for _, tok := range []string{adminToken, adminToken2, adminToken[:32]} {
		if strings.Contains(p.logs.String(), tok) {
			t.Error("a log line holds the admin token")
		}
	}
}

// exogate refuses to start when the admin listener is off loopback without
// admin.token_file, naming the field, and when the token file is missing or
// holds too short a token. It exits before listening.
func TestAdminTokenRequiredToStart(t *testing.T) {
	t.Parallel()
	farm := newFarm(t)
	short := writeFile(t, "short-token", "hunter2\n")
	for name, tc := range map[string]struct{ admin, env, want string }{
		"off loopback without token file": {admin: "admin: {listen: 0.0.0.0:0}", want: "admin.token_file: required when admin.listen (0.0.0.0:0) is not loopback"},
		"variable opens it":               {env: "EXOGATE_ADMIN_LISTEN=0.0.0.0:0", want: "admin.token_file: required"},
		"missing token file":              {admin: "admin: {listen: 127.0.0.1:0, token_file: " + filepath.Join(t.TempDir(), "nope") + "}", want: "admin.token_file"},
		"short token":                     {admin: "admin: {listen: 127.0.0.1:0, token_file: " + short + "}", want: "the token must be at least 32 characters"},
	} {
		t.Run(name, func(t *testing.T) {
			text := farm.config("")
			if tc.admin != "" {
				text = strings.Replace(text, "admin: {listen: 127.0.0.1:0}", tc.admin, 1)
			}
			cfg := writeFile(t, "exogate.yaml", text)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, exogateBinary(t), "-config", cfg)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			for k, v := range farmEnv() {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			if tc.env != "" {
				cmd.Env = append(cmd.Env, tc.env)
			}
			out, err := cmd.CombinedOutput()
			if err == nil || ctx.Err() != nil {
				t.Fatalf("exogate started (err %v, ctx %v); output:\n%s", err, ctx.Err(), out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output does not name %q:\n%s", tc.want, out)
			}
			if strings.Contains(string(out), `"listening"`) || strings.Contains(string(out), "hunter2") {
				t.Errorf("it listened, or printed the token:\n%s", out)
			}
		})
	}
}
