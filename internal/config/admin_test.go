package config

import (
	"strings"
	"testing"
	"time"
)

// TestAdminTokenFile checks the admin section: off loopback the admin
// listener needs a token file (the message names admin.token_file), on
// loopback it may have one, EXOGATE_ADMIN_TOKEN_FILE sets it, and the
// reload interval defaults to 5s and may not be negative.
func TestAdminTokenFile(t *testing.T) {
	tests := []struct {
		name, yaml string
		env        map[string]string
		want       string // "" = valid
	}{
		{"loopback without token", "admin: {listen: 127.0.0.1:9901}\n", nil, ""},
		{"loopback with token", "admin: {listen: '[::1]:9901', token_file: /run/secrets/admin}\n", nil, ""},
		{"off", "admin: {listen: ''}\n", nil, ""},
		{"every interface without token", "admin: {listen: 0.0.0.0:9901}\n", nil, "admin.token_file: required when admin.listen (0.0.0.0:9901) is not loopback"},
		{"empty host without token", "admin: {listen: ':9901'}\n", nil, "admin.token_file: required"},
		{"pod IP without token", "admin: {listen: 10.1.2.3:9901}\n", nil, "admin.token_file"},
		{"variable opens it without token", "", map[string]string{EnvAdminListen: "0.0.0.0:9901"}, "admin.token_file"},
		{"every interface with token", "admin: {listen: 0.0.0.0:9901, token_file: /run/secrets/admin}\n", nil, ""},
		{"token from the environment", "admin: {listen: 0.0.0.0:9901}\n", map[string]string{EnvAdminTokenFile: "/run/secrets/admin"}, ""},
		{"negative interval", "admin: {min_reload_interval: -1s}\n", nil, "admin.min_reload_interval"},
		{"no limit", "admin: {min_reload_interval: 0s}\n", nil, ""},
		{"advertise URL", "admin: {advertise_url: 'http://10.1.2.3:9901'}\n", nil, ""},
		{"advertise https IPv6", "admin: {advertise_url: 'https://[fd00::1]:9901'}\n", nil, ""},
		{"advertise from the environment", "", map[string]string{EnvAdminURL: "http://10.1.2.3:9901"}, ""},
		{"bad advertise from the environment", "", map[string]string{EnvAdminURL: "http://$(POD_IP):9901"}, "admin.advertise_url"},
		{"advertise without port", "admin: {advertise_url: 'http://10.1.2.3'}\n", nil, "admin.advertise_url"},
		{"advertise other scheme", "admin: {advertise_url: 'tcp://10.1.2.3:9901'}\n", nil, "admin.advertise_url"},
		{"advertise with path", "admin: {advertise_url: 'http://10.1.2.3:9901/admin'}\n", nil, "admin.advertise_url"},
		{"advertise with slash", "admin: {advertise_url: 'http://10.1.2.3:9901/'}\n", nil, "admin.advertise_url"},
		{"advertise with query", "admin: {advertise_url: 'http://10.1.2.3:9901?a=b'}\n", nil, "admin.advertise_url"},
		{"advertise with user", "admin: {advertise_url: 'http://u:p@10.1.2.3:9901'}\n", nil, "admin.advertise_url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml + account))
			if err != nil {
				t.Fatal(err)
			}
			cfg.ApplyEnv(func(k string) string { return tc.env[k] })
			err = cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	if d := Default().Admin; d.MinReloadInterval != 5*time.Second || d.TokenFile != "" {
		t.Errorf("admin defaults %+v", d)
	}
}
