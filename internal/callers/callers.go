// Package callers knows who is calling the gateway and what each caller may
// do. A caller authenticates the way an Exotel SDK already does — HTTP Basic,
// with its client id as the username and its client secret as the password,
// exactly where the SDK puts an Exotel key and token — or with a verified
// TLS client certificate. Secrets are stored only as SHA-256 hashes and
// compared in constant time.
package callers

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinel errors.
var (
	// ErrUnauthenticated means the caller proved no identity, or a wrong one.
	ErrUnauthenticated = errors.New("callers: caller not authenticated")
)

// ClientConfig is one caller as configured.
type ClientConfig struct {
	ID           string
	SecretSHA256 string   // hex SHA-256 of the client secret ("" = certificate only)
	CertIdentity string   // URI SAN, DNS SAN or CN of its verified certificate ("" = Basic only)
	Accounts     []string // account SIDs it may use; "*" = all
	Buckets      []string // empty = all
	Methods      []string // empty = all
}

// Client is an authenticated caller and its rights. Safe for concurrent
// use; immutable.
type Client struct {
	ID       string
	hash     [sha256.Size]byte
	hasHash  bool
	accounts map[string]bool // nil with allAccounts
	all      bool
	buckets  map[string]bool // nil = all
	methods  map[string]bool // nil = all
}

// Allowed reports whether the client may call account's bucket with method.
// A nil Client (an anonymous caller where none is required) may do anything.
func (c *Client) Allowed(account, bucket, method string) bool {
	if c == nil {
		return true
	}
	if !c.all && !c.accounts[account] {
		return false
	}
	if c.buckets != nil && !c.buckets[bucket] {
		return false
	}
	return c.methods == nil || c.methods[method]
}

// Callers identifies the caller of each request. Safe for concurrent use.
type Callers struct {
	byID     map[string]*Client
	byCert   map[string]*Client
	required bool
	dummy    [sha256.Size]byte
}

// New builds the set of callers. required says whether a request without a
// valid identity is refused (401); otherwise it proceeds as anonymous, with
// whatever credentials it sent ignored and removed.
func New(clients []ClientConfig, required bool) (*Callers, error) {
	cs := &Callers{byID: map[string]*Client{}, byCert: map[string]*Client{}, required: required}
	for _, cc := range clients {
		c := &Client{ID: cc.ID}
		if cc.SecretSHA256 != "" {
			b, err := hex.DecodeString(cc.SecretSHA256)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("client %s: secret_sha256 is not 64 hex digits", cc.ID)
			}
			copy(c.hash[:], b)
			c.hasHash = true
		}
		for _, a := range cc.Accounts {
			if a == "*" {
				c.all = true
				continue
			}
			if c.accounts == nil {
				c.accounts = map[string]bool{}
			}
			c.accounts[strings.ToLower(a)] = true
		}
		if len(cc.Buckets) > 0 {
			c.buckets = map[string]bool{}
			for _, b := range cc.Buckets {
				c.buckets[b] = true
			}
		}
		if len(cc.Methods) > 0 {
			c.methods = map[string]bool{}
			for _, m := range cc.Methods {
				c.methods[strings.ToUpper(m)] = true
			}
		}
		if _, dup := cs.byID[c.ID]; dup {
			return nil, fmt.Errorf("client %s configured twice", c.ID)
		}
		cs.byID[c.ID] = c
		if cc.CertIdentity != "" {
			if _, dup := cs.byCert[cc.CertIdentity]; dup {
				return nil, fmt.Errorf("client %s: cert_identity %q is another client's too", c.ID, cc.CertIdentity)
			}
			cs.byCert[cc.CertIdentity] = c
		}
	}
	return cs, nil
}

// Required reports whether every request must carry a valid identity.
func (cs *Callers) Required() bool { return cs.required }

// Identify returns the request's caller: by its verified TLS client
// certificate, else by HTTP Basic client id and secret. With no identity it
// returns nil (anonymous) when none is required, else ErrUnauthenticated. A
// wrong secret, or an unknown id while identities are required, is
// ErrUnauthenticated. Where identities are not required, Basic credentials
// that name no client are taken for stale Exotel credentials from a legacy
// caller: ignored, and the request proceeds as anonymous.
func (cs *Callers) Identify(r *http.Request) (*Client, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 {
		if c := cs.byCertificate(r.TLS.PeerCertificates[0]); c != nil {
			return c, nil
		}
	}
	id, secret, ok := ParseBasic(r.Header.Get("Authorization"))
	if !ok {
		if cs.required {
			return nil, ErrUnauthenticated
		}
		return nil, nil
	}
	c, known := cs.byID[id]
	sum := sha256.Sum256([]byte(secret))
	want := cs.dummy
	if known && c.hasHash {
		want = c.hash
	}
	// Compare even for an unknown id, so timing tells nothing of the ids.
	match := subtle.ConstantTimeCompare(sum[:], want[:]) == 1 && known && c.hasHash
	switch {
	case match:
		return c, nil
	case known || cs.required:
		return nil, ErrUnauthenticated
	default:
		return nil, nil
	}
}

// byCertificate maps a verified certificate to a client by its URI SANs,
// then DNS SANs, then subject CN.
func (cs *Callers) byCertificate(cert *x509.Certificate) *Client {
	for _, u := range cert.URIs {
		if c := cs.byCert[u.String()]; c != nil {
			return c
		}
	}
	for _, d := range cert.DNSNames {
		if c := cs.byCert[d]; c != nil {
			return c
		}
	}
	if cn := cert.Subject.CommonName; cn != "" {
		return cs.byCert[cn]
	}
	return nil
}

// ParseBasic parses an HTTP Basic Authorization header value (RFC 7617):
// the scheme is case-insensitive, the credentials base64 of "id:secret".
func ParseBasic(h string) (id, secret string, ok bool) {
	const prefix = "basic "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[len(prefix):]))
	if err != nil {
		return "", "", false
	}
	id, secret, ok = strings.Cut(string(raw), ":")
	if !ok || id == "" {
		return "", "", false
	}
	return id, secret, true
}

// HashSecret returns the hex SHA-256 of a client secret, as the
// configuration stores it.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
