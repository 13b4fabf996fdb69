package callers

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/exogate/exogate/internal/exotel"
)

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

// testClients are billing (Basic; POST SMS sends to acme), ops (Basic or
// a SPIFFE certificate; everything) and certonly (a DNS SAN; acme).
func testClients() []ClientConfig {
	return []ClientConfig{
		{ID: "billing", SecretSHA256: HashSecret("billing-secret-0123456789"), Rights: Rights{Accounts: []string{"acme"}, Buckets: []string{"sms"}, Methods: []string{"post"}, Operations: []string{"sms.send"}}},
		{ID: "ops", SecretSHA256: HashSecret("ops-secret-0123456789"), CertIdentity: "uri:spiffe://corp/ops", Rights: Rights{Accounts: []string{"*"}}},
		{ID: "certonly", CertIdentity: "dns:CertOnly.corp.internal", Rights: Rights{Accounts: []string{"ACME"}}},
		{ID: "legacy", CertIdentity: "cn:legacy", Rights: Rights{Accounts: []string{"acme"}}},
	}
}

func newTestCallers(t *testing.T, cfg Config) *Callers {
	t.Helper()
	cs, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestIdentify(t *testing.T) {
	const (
		refused = "refused"
		anon    = "anonymous"
	)
	for _, tc := range []struct {
		name string
		auth string
		// what each configuration makes of it: client id, anonymous or refused
		noClients, clients, allowAnonymous string
	}{
		{"right secret", basic("billing", "billing-secret-0123456789"), anon, "billing", "billing"},
		{"scheme in any case", "bAsIc " + basic("billing", "billing-secret-0123456789")[6:], anon, "billing", "billing"},
		{"wrong secret", basic("billing", "nope"), anon, refused, refused},
		{"secret of another client", basic("billing", "ops-secret-0123456789"), anon, refused, refused},
		{"cert-only client by basic", basic("certonly", ""), anon, refused, refused},
		{"no credentials", "", anon, refused, anon},
		{"unknown id (stale Exotel key:token)", basic("f81f2a5027e1463d812c4d2b36ea2d7a", "9c3e8a1b4f"), anon, refused, refused},
		{"bearer", "Bearer abc", anon, refused, refused},
		{"junk", "Basic !!!", anon, refused, refused},
	} {
		for cfgName, cfg := range map[string]Config{
			"no clients":      {},
			"clients":         {Clients: testClients()},
			"allow anonymous": {Clients: testClients(), AllowAnonymous: true},
		} {
			want := map[string]string{"no clients": tc.noClients, "clients": tc.clients, "allow anonymous": tc.allowAnonymous}[cfgName]
			t.Run(cfgName+"/"+tc.name, func(t *testing.T) {
				cs := newTestCallers(t, cfg)
				r := &http.Request{Header: http.Header{}}
				if tc.auth != "" {
					r.Header.Set("Authorization", tc.auth)
				}
				c, err := cs.Identify(r)
				got := refused
				switch {
				case err != nil:
					if !errors.Is(err, ErrUnauthenticated) || c != nil {
						t.Errorf("client %v err %v: want nil and ErrUnauthenticated", c, err)
					}
				case c == nil:
					t.Fatal("nil client and nil error")
				case c.ID == "":
					got = anon
				default:
					got = c.ID
				}
				if got != want {
					t.Errorf("got %s, want %s", got, want)
				}
			})
		}
	}
}

func TestIdentifyByCertificate(t *testing.T) {
	cs := newTestCallers(t, Config{Clients: testClients(), AllowAnonymous: true})
	spiffe, _ := url.Parse("spiffe://corp/ops")
	other, _ := url.Parse("spiffe://corp/other")
	sanExt := pkix.Extension{Id: oidSubjectAltName, Value: []byte{0x30, 0x00}}
	for _, tc := range []struct {
		name     string
		cert     *x509.Certificate
		verified bool
		want     string // "" = refused
	}{
		{"uri san", &x509.Certificate{URIs: []*url.URL{spiffe}}, true, "ops"},
		{"uri san among others", &x509.Certificate{URIs: []*url.URL{other, spiffe}}, true, "ops"},
		{"dns san, any case", &x509.Certificate{DNSNames: []string{"x.corp", "certonly.CORP.internal"}}, true, "certonly"},
		{"cn without SANs", &x509.Certificate{Subject: pkix.Name{CommonName: "legacy"}}, true, "legacy"},
		// Each identity is matched only against the kind it names.
		{"cn equal to a uri identity", &x509.Certificate{Subject: pkix.Name{CommonName: "spiffe://corp/ops"}}, true, ""},
		{"cn equal to a dns identity", &x509.Certificate{Subject: pkix.Name{CommonName: "certonly.corp.internal"}}, true, ""},
		{"dns san equal to a cn identity", &x509.Certificate{DNSNames: []string{"legacy"}}, true, ""},
		// Never a CN when the certificate has SANs.
		{"cn beside a dns san", &x509.Certificate{Subject: pkix.Name{CommonName: "legacy"}, DNSNames: []string{"x.corp"}}, true, ""},
		{"cn beside a uri san", &x509.Certificate{Subject: pkix.Name{CommonName: "legacy"}, URIs: []*url.URL{other}}, true, ""},
		{"cn beside an ip san", &x509.Certificate{Subject: pkix.Name{CommonName: "legacy"}, IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}}, true, ""},
		{"cn beside a SAN Go does not parse", &x509.Certificate{Subject: pkix.Name{CommonName: "legacy"}, Extensions: []pkix.Extension{sanExt}}, true, ""},
		{"unmapped", &x509.Certificate{Subject: pkix.Name{CommonName: "stranger"}}, true, ""},
		{"not verified", &x509.Certificate{URIs: []*url.URL{spiffe}}, false, "anonymous"},
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
				if got == "" {
					got = "anonymous"
				}
			}
			if got != tc.want || (tc.want == "" && !errors.Is(err, ErrUnauthenticated)) {
				t.Errorf("client %q err %v, want %q", got, err, tc.want)
			}
		})
	}
}

func TestParseCertIdentity(t *testing.T) {
	for _, ok := range []string{"uri:spiffe://corp/ops", "dns:api.corp.example", "cn:Billing Service"} {
		if _, _, err := ParseCertIdentity(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"spiffe://corp/ops", "ops.corp.internal", "billing", "URI:spiffe://x/y", "uri:", "dns: x", "uri:not a uri", "uri:/relative", "dns:a/b", "email:a@b"} {
		_, _, err := ParseCertIdentity(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
			continue
		}
		if strings.Contains(bad, ":") == false && !strings.Contains(err.Error(), "uri:") {
			t.Errorf("%q: the error does not say the forms: %v", bad, err)
		}
	}
}

func TestAllowed(t *testing.T) {
	cs := newTestCallers(t, Config{Clients: testClients()})
	billing, ops, certonly := cs.byID["billing"], cs.byID["ops"], cs.byID["certonly"]
	route := func(method, path string) exotel.Route {
		r, err := exotel.Classify(method, path)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return r
	}
	for _, tc := range []struct {
		c            *Client
		method, path string
		want         bool
	}{
		{billing, "POST", "/v1/Accounts/acme/Sms/send.json", true},
		{billing, "POST", "/v1/Accounts/ACME/Sms/send.json", true},
		{billing, "POST", "/v1/Accounts/acme/Sms/bulksend.json", false},   // operation
		{billing, "GET", "/v1/Accounts/acme/SMS/Messages/a1.json", false}, // method
		{billing, "POST", "/v1/Accounts/acme/Calls/connect", false},       // bucket
		{billing, "POST", "/v1/Accounts/other/Sms/send", false},           // account
		{ops, "DELETE", "/v2/accounts/anything/users/u1", true},
		{certonly, "POST", "/v2/accounts/acme/messages", true},
		{certonly, "GET", "/v2/accounts/beta/messages", false},
		{nil, "POST", "/v1/Accounts/acme/Sms/send", false},
	} {
		id := "nil"
		if tc.c != nil {
			id = tc.c.ID
		}
		if got := tc.c.Allowed(route(tc.method, tc.path), tc.method); got != tc.want {
			t.Errorf("%s %s %s: %v, want %v", id, tc.method, tc.path, got, tc.want)
		}
	}
}

// The anonymous caller's rights: everything without clients (the sidecar),
// nothing with clients, and exactly the anonymous block when one is given.
func TestAnonymousRights(t *testing.T) {
	connect, _ := exotel.Classify("POST", "/v1/Accounts/acme/Calls/connect.json")
	read, _ := exotel.Classify("GET", "/v1/Accounts/acme/Calls.json")
	otherRead, _ := exotel.Classify("GET", "/v1/Accounts/beta/Calls.json")
	block := &Rights{Accounts: []string{"acme"}, Operations: []string{"*.read"}}
	for _, tc := range []struct {
		name                     string
		cfg                      Config
		connect, read, otherRead bool
	}{
		{"no clients", Config{}, true, true, true},
		{"no clients, with a block", Config{Anonymous: block}, false, true, false},
		{"clients, allowed, no block", Config{Clients: testClients(), AllowAnonymous: true}, false, false, false},
		{"clients, allowed, a block", Config{Clients: testClients(), AllowAnonymous: true, Anonymous: block}, false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := newTestCallers(t, tc.cfg).Identify(&http.Request{Header: http.Header{}})
			if err != nil || c == nil || c.ID != "" {
				t.Fatalf("client %v err %v, want the anonymous caller", c, err)
			}
			got := [3]bool{c.Allowed(connect, "POST"), c.Allowed(read, "GET"), c.Allowed(otherRead, "GET")}
			if want := [3]bool{tc.connect, tc.read, tc.otherRead}; got != want {
				t.Errorf("connect, read, other account's read: %v, want %v", got, want)
			}
		})
	}
}

func TestExpandOperation(t *testing.T) {
	for pattern, want := range map[string]string{
		"calls.connect": "[calls.connect]",
		"calls.*":       "[calls.connect calls.read calls.write]",
		"*.buy":         "[numbers.buy]",
		"sms.*":         "[sms.send sms.bulksend sms.read sms.write]",
	} {
		ops, err := ExpandOperation(pattern)
		if err != nil || fmt.Sprint(ops) != want {
			t.Errorf("%s: %v %v, want %s", pattern, ops, err, want)
		}
	}
	for _, bad := range []string{"", "*", "calls", "call.connect", "calls.dial", "Calls.connect", "calls.*.x"} {
		if _, err := ExpandOperation(bad); err == nil || !strings.Contains(err.Error(), "calls.connect") {
			t.Errorf("%q: %v, want an error listing the operations", bad, err)
		}
	}
}

func TestNewRejects(t *testing.T) {
	for name, cfg := range map[string]Config{
		"bad hash":          {Clients: []ClientConfig{{ID: "a", SecretSHA256: "secret-in-clear", Rights: Rights{Accounts: []string{"*"}}}}},
		"duplicate id":      {Clients: []ClientConfig{{ID: "a", Rights: Rights{Accounts: []string{"*"}}}, {ID: "a", Rights: Rights{Accounts: []string{"*"}}}}},
		"duplicate cert":    {Clients: []ClientConfig{{ID: "a", CertIdentity: "cn:x", Rights: Rights{Accounts: []string{"*"}}}, {ID: "b", CertIdentity: "cn:x", Rights: Rights{Accounts: []string{"*"}}}}},
		"duplicate dns":     {Clients: []ClientConfig{{ID: "a", CertIdentity: "dns:X.corp"}, {ID: "b", CertIdentity: "dns:x.CORP"}}},
		"unprefixed cert":   {Clients: []ClientConfig{{ID: "a", CertIdentity: "spiffe://corp/a"}}},
		"bad operation":     {Clients: []ClientConfig{{ID: "a", Rights: Rights{Operations: []string{"calls.dial"}}}}},
		"bad bucket":        {Clients: []ClientConfig{{ID: "a", Rights: Rights{Buckets: []string{"voice"}}}}},
		"bad anonymous op":  {Anonymous: &Rights{Operations: []string{"sms"}}},
		"client without id": {Clients: []ClientConfig{{SecretSHA256: HashSecret("x")}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(cfg)
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

// authRequest is a request whose Authorization header is h.
func authRequest(h string) *http.Request {
	return &http.Request{Header: http.Header{"Authorization": {h}}}
}

func TestParseBasic(t *testing.T) {
	for _, tc := range []struct {
		name, header string
		id, secret   string
		ok           bool
	}{
		{"id and secret", basic("billing", "s3cret"), "billing", "s3cret", true},
		{"scheme in any case", "bAsIc " + base64.StdEncoding.EncodeToString([]byte("a:b")), "a", "b", true},
		{"colons in the secret", basic("a", "b:c:d"), "a", "b:c:d", true},
		{"empty secret", basic("a", ""), "a", "", true},
		{"empty id", basic("", "s3cret"), "", "", false},
		{"no colon", "Basic " + base64.StdEncoding.EncodeToString([]byte("billing")), "", "", false},
		{"not base64", "Basic !!!", "", "", false},
		{"scheme only", "Basic ", "", "", false},
		{"another scheme", "Bearer " + base64.StdEncoding.EncodeToString([]byte("a:b")), "", "", false},
		{"no header", "", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, secret, ok := ParseBasic(authRequest(tc.header))
			if id != tc.id || secret != tc.secret || ok != tc.ok {
				t.Errorf("ParseBasic(%q) = %q, %q, %v; want %q, %q, %v", tc.header, id, secret, ok, tc.id, tc.secret, tc.ok)
			}
		})
	}
}

func FuzzParseBasic(f *testing.F) {
	f.Add(basic("billing", "s3cret"))
	f.Add("basic " + base64.StdEncoding.EncodeToString([]byte("a:b:c")))
	f.Add("Basic ")
	f.Add("Basic Zm9v")
	f.Add("Bearer x")
	f.Fuzz(func(t *testing.T, h string) {
		id, secret, ok := ParseBasic(authRequest(h))
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
		id2, secret2, ok2 := ParseBasic(authRequest(basic(id, secret)))
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
		cs := newTestCallers(t, Config{Clients: testClients(), AllowAnonymous: true})
		r := &http.Request{Header: http.Header{"Authorization": {h}}}
		c, err := cs.Identify(r)
		if (c == nil) == (err == nil) {
			t.Fatalf("client %v and err %v: exactly one must be set", c, err)
		}
		if c != nil && c.ID == "" && h != "" {
			t.Fatalf("credentials %q that name no client made an anonymous caller", h)
		}
		if c != nil && c.ID != "" {
			_, secret, _ := ParseBasic(authRequest(h))
			if HashSecret(secret) != HashSecret(map[string]string{"billing": "billing-secret-0123456789", "ops": "ops-secret-0123456789"}[c.ID]) {
				t.Fatalf("identified %s without its secret", c.ID)
			}
		}
	})
}
