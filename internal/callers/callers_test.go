package callers

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

func newTestCallers(t *testing.T, required bool) *Callers {
	t.Helper()
	cs, err := New([]ClientConfig{
		{ID: "billing", SecretSHA256: HashSecret("billing-secret-0123456789"), Accounts: []string{"acme"}, Buckets: []string{"sms"}, Methods: []string{"post"}},
		{ID: "ops", SecretSHA256: HashSecret("ops-secret-0123456789"), CertIdentity: "spiffe://corp/ops", Accounts: []string{"*"}},
		{ID: "certonly", CertIdentity: "certonly.corp.internal", Accounts: []string{"ACME"}},
	}, required)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestIdentify(t *testing.T) {
	for _, required := range []bool{true, false} {
		cs := newTestCallers(t, required)
		tests := []struct {
			name   string
			auth   string
			want   string // client id, "" for anonymous
			err    bool
			anyway bool // the same whatever required says
		}{
			{"right secret", basic("billing", "billing-secret-0123456789"), "billing", false, true},
			{"scheme in any case", "bAsIc " + basic("billing", "billing-secret-0123456789")[6:], "billing", false, true},
			{"wrong secret", basic("billing", "nope"), "", true, true},
			{"secret of another client", basic("billing", "ops-secret-0123456789"), "", true, true},
			{"cert-only client by basic", basic("certonly", ""), "", true, true},
			{"no credentials", "", "", required, false},
			{"unknown id (stale Exotel key:token)", basic("f81f2a5027e1463d812c4d2b36ea2d7a", "9c3e8a1b4f"), "", required, false},
			{"bearer", "Bearer abc", "", required, false},
			{"junk", "Basic !!!", "", required, false},
		}
		for _, tc := range tests {
			t.Run(map[bool]string{true: "required/", false: "optional/"}[required]+tc.name, func(t *testing.T) {
				r := &http.Request{Header: http.Header{}}
				if tc.auth != "" {
					r.Header.Set("Authorization", tc.auth)
				}
				c, err := cs.Identify(r)
				if tc.err != (err != nil) {
					t.Fatalf("err = %v, want error %v", err, tc.err)
				}
				if err != nil && !errors.Is(err, ErrUnauthenticated) {
					t.Errorf("err %v is not ErrUnauthenticated", err)
				}
				got := ""
				if c != nil {
					got = c.ID
				}
				if got != tc.want {
					t.Errorf("client %q, want %q", got, tc.want)
				}
			})
		}
	}
}

func TestIdentifyByCertificate(t *testing.T) {
	cs := newTestCallers(t, true)
	spiffe, _ := url.Parse("spiffe://corp/ops")
	for _, tc := range []struct {
		name     string
		cert     *x509.Certificate
		verified bool
		want     string
	}{
		{"uri san", &x509.Certificate{URIs: []*url.URL{spiffe}}, true, "ops"},
		{"dns san", &x509.Certificate{DNSNames: []string{"x.corp", "certonly.corp.internal"}}, true, "certonly"},
		{"cn", &x509.Certificate{Subject: pkix.Name{CommonName: "certonly.corp.internal"}}, true, "certonly"},
		{"unmapped", &x509.Certificate{Subject: pkix.Name{CommonName: "stranger"}}, true, ""},
		{"not verified", &x509.Certificate{URIs: []*url.URL{spiffe}}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{tc.cert}}
			if tc.verified {
				st.VerifiedChains = [][]*x509.Certificate{{tc.cert}}
			}
			c, err := cs.Identify(&http.Request{Header: http.Header{}, TLS: st})
			got := ""
			if c != nil {
				got = c.ID
			}
			if got != tc.want || (tc.want == "" && !errors.Is(err, ErrUnauthenticated)) {
				t.Errorf("client %q err %v, want %q", got, err, tc.want)
			}
		})
	}
}

func TestAllowed(t *testing.T) {
	cs := newTestCallers(t, true)
	billing, ops, certonly := cs.byID["billing"], cs.byID["ops"], cs.byID["certonly"]
	for _, tc := range []struct {
		c                       *Client
		account, bucket, method string
		want                    bool
	}{
		{billing, "acme", "sms", "POST", true},
		{billing, "acme", "sms", "GET", false},
		{billing, "acme", "voice_v1", "POST", false},
		{billing, "other", "sms", "POST", false},
		{ops, "anything", "voice_v2", "DELETE", true},
		{certonly, "acme", "whatsapp", "GET", true},
		{certonly, "beta", "whatsapp", "GET", false},
		{nil, "acme", "sms", "POST", true},
	} {
		id := "anonymous"
		if tc.c != nil {
			id = tc.c.ID
		}
		if got := tc.c.Allowed(tc.account, tc.bucket, tc.method); got != tc.want {
			t.Errorf("%s %s/%s %s: %v, want %v", id, tc.account, tc.bucket, tc.method, got, tc.want)
		}
	}
}

func TestNewRejects(t *testing.T) {
	for name, cc := range map[string][]ClientConfig{
		"bad hash":       {{ID: "a", SecretSHA256: "secret-in-clear", Accounts: []string{"*"}}},
		"duplicate id":   {{ID: "a", Accounts: []string{"*"}}, {ID: "a", Accounts: []string{"*"}}},
		"duplicate cert": {{ID: "a", CertIdentity: "x", Accounts: []string{"*"}}, {ID: "b", CertIdentity: "x", Accounts: []string{"*"}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(cc, true)
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), "secret-in-clear") {
				t.Errorf("error repeats the value: %v", err)
			}
		})
	}
}

func TestHashSecret(t *testing.T) {
	// sha256("abc"), a published test vector.
	if got := HashSecret("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashSecret(abc) = %s", got)
	}
}

func FuzzParseBasic(f *testing.F) {
	f.Add(basic("billing", "s3cret"))
	f.Add("basic " + base64.StdEncoding.EncodeToString([]byte("a:b:c")))
	f.Add("Basic ")
	f.Add("Basic Zm9v")
	f.Add("Bearer x")
	f.Fuzz(func(t *testing.T, h string) {
		id, secret, ok := ParseBasic(h)
		if !ok {
			if id != "" || secret != "" {
				t.Fatal("values returned with ok false")
			}
			return
		}
		if id == "" || strings.Contains(id, ":") {
			t.Fatalf("id %q", id)
		}
		// Round trip: the same pair encodes back to an equal header.
		id2, secret2, ok2 := ParseBasic(basic(id, secret))
		if !ok2 || id2 != id || secret2 != secret {
			t.Fatalf("round trip of %q:%q gave %q:%q %v", id, secret, id2, secret2, ok2)
		}
	})
}

func FuzzIdentify(f *testing.F) {
	f.Add(basic("billing", "billing-secret-0123456789"))
	f.Add(basic("billing", "x"))
	f.Add("Basic YmlsbGluZzo=")
	f.Fuzz(func(t *testing.T, h string) {
		cs := newTestCallers(t, true)
		r := &http.Request{Header: http.Header{"Authorization": {h}}}
		c, err := cs.Identify(r)
		if (c == nil) == (err == nil) {
			t.Fatalf("client %v and err %v: exactly one must be set when identities are required", c, err)
		}
		if c != nil {
			_, secret, _ := ParseBasic(h)
			if HashSecret(secret) != HashSecret(map[string]string{"billing": "billing-secret-0123456789", "ops": "ops-secret-0123456789"}[c.ID]) {
				t.Fatalf("identified %s without its secret", c.ID)
			}
		}
	})
}
