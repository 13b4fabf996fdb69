package credentials

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

const (
	key   = "f81f2a5027e1463d812c4d2b36ea2d7a"
	token = "9c3e8a1b4f6d2e0a7c5b3d9f1e8a2c4d"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestEnvSource(t *testing.T) {
	s, err := NewStore([]Spec{{Account: "acme", Source: "env", APIKeyEnv: "K", APITokenEnv: "T"}},
		env(map[string]string{"K": key, "T": token}))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"Authorization": {"Basic c3RhbGU6c3RhbGU=", "Bearer x"}}
	if _, err := s.Authorize(h, "acme"); err != nil {
		t.Fatal(err)
	}
	r := &http.Request{Header: h}
	k, tk, ok := r.BasicAuth()
	if !ok || k != key || tk != token || len(h.Values("Authorization")) != 1 {
		t.Errorf("Authorization %q", h.Values("Authorization"))
	}
	if !s.Ready() {
		t.Error("not ready")
	}
	if c := s.Current("acme"); c.Source() != "env" || c.Version() == "" || c.LoadedAt().IsZero() {
		t.Errorf("metadata %s %s %v", c.Source(), c.Version(), c.LoadedAt())
	}

	h = http.Header{"Authorization": {"Bearer x"}}
	if _, err := s.Authorize(h, "other"); !errors.Is(err, ErrUnknownAccount) {
		t.Errorf("unknown account: %v", err)
	}
	if len(h.Values("Authorization")) != 0 {
		t.Error("caller's Authorization left in place for an unknown account")
	}
}

func TestEnvSourceMissingVariables(t *testing.T) {
	_, err := NewStore([]Spec{
		{Account: "acme", Source: "env", APIKeyEnv: "ACME_KEY", APITokenEnv: "ACME_TOKEN"},
		{Account: "beta", Source: "env", APIKeyEnv: "BETA_KEY", APITokenEnv: "BETA_TOKEN"},
	}, env(map[string]string{"ACME_KEY": key, "BETA_TOKEN": token}))
	if err == nil {
		t.Fatal("missing variables accepted")
	}
	for _, want := range []string{"account acme", "ACME_TOKEN", "account beta", "BETA_KEY"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), token) {
		t.Errorf("error reveals a secret: %v", err)
	}
}

func TestNewCredentialRejectsBadValues(t *testing.T) {
	for name, kt := range map[string][2]string{
		"empty key": {"", token}, "empty token": {key, ""}, "colon in key": {"a:b", token}, "newline in token": {key, "a\nb"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewCredential(kt[0], kt[1], "env", "1", time.Now())
			if err == nil {
				t.Fatal("accepted")
			}
			if kt[1] != "" && strings.Contains(err.Error(), kt[1]) {
				t.Errorf("error reveals the token: %v", err)
			}
		})
	}
}

func TestCredentialNeverPrintsItsValues(t *testing.T) {
	c, err := NewCredential(key, token, "env", "7", time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	holder := struct {
		Cred *Credential
		Name string
	}{c, "x"}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		out = append(out, fmt.Sprintf(verb, c), fmt.Sprintf(verb, holder))
	}
	js, _ := json.Marshal(holder)
	out = append(out, string(js))
	var buf bytes.Buffer
	zl := zerolog.New(&buf)
	zl.Info().Object("cred", c).Interface("any", c).Msg("x")
	out = append(out, buf.String())
	func() {
		defer func() { out = append(out, fmt.Sprint(recover())) }()
		panic(c)
	}()
	all := strings.Join(out, "\n")
	b64 := c.header[0][len("Basic "):]
	for _, secret := range []string{key, token, b64} {
		if strings.Contains(all, secret) {
			t.Fatalf("a secret leaked:\n%s", all)
		}
	}
	if !strings.Contains(buf.String(), `"version":"7"`) {
		t.Errorf("zerolog object lacks metadata: %s", buf.String())
	}
}

func TestSwapIsAtomic(t *testing.T) {
	s, _ := NewStore([]Spec{{Account: "acme", Source: "env", APIKeyEnv: "K", APITokenEnv: "T"}}, env(map[string]string{"K": "k1", "T": "t1"}))
	c2, _ := NewCredential("k2", "t2", "test", "2", time.Now())
	c1 := s.Current("acme")
	valid := map[string]bool{c1.header[0]: true, c2.header[0]: true}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 2000; j++ {
				h := http.Header{}
				if _, err := s.Authorize(h, "acme"); err != nil || !valid[h.Get("Authorization")] {
					t.Errorf("torn or missing credential: %v %q", err, h.Get("Authorization"))
					return
				}
			}
		}()
	}
	for j := 0; j < 1000; j++ {
		if err := s.Swap("acme", []*Credential{c1, c2}[j%2]); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if err := s.Swap("acme", nil); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Swap(nil) = %v", err)
	}
	if err := s.Swap("nope", c2); !errors.Is(err, ErrUnknownAccount) {
		t.Errorf("Swap(unknown) = %v", err)
	}
}
