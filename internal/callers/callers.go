// Package callers knows who is calling the gateway and what each caller may
// do. A caller authenticates the way an Exotel SDK already does — HTTP Basic,
// with its client id as the username and its client secret as the password,
// exactly where the SDK puts an Exotel key and token — or with a verified
// TLS client certificate. Secrets are stored only as SHA-256 hashes and
// compared in constant time.
//
// With no clients configured, every caller is anonymous (the sidecar on
// loopback): the credentials it sends are taken for stale Exotel ones and
// ignored. With clients, a caller must prove one of their identities: an
// identity that names no client is refused, and a caller with none is
// refused too unless anonymous callers are allowed, and then it may do only
// what the anonymous rights grant.
package callers

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/exogate/exogate/internal/exotel"
)

// Sentinel errors.
var (
	// ErrUnauthenticated means the caller proved no identity, or a wrong one.
	ErrUnauthenticated = errors.New("callers: caller not authenticated")
)

// Rights are what a caller may do: a request is allowed when its account,
// bucket, method and operation are all allowed.
type Rights struct {
	Accounts   []string // account SIDs; "*" = all; empty = none
	Buckets    []string // bucket names; empty = all
	Methods    []string // HTTP methods; empty = all
	Operations []string // operation names or patterns (calls.*, *.read); empty = all
}

// ClientConfig is one caller as configured.
type ClientConfig struct {
	ID           string
	SecretSHA256 string // hex SHA-256 of the client secret ("" = certificate only)
	CertIdentity string // uri:…, dns:… or cn:… of its verified certificate ("" = Basic only)
	Rights       Rights
}

// Config is the set of callers. The zero value has no clients: every caller
// is anonymous and may do anything.
type Config struct {
	Clients []ClientConfig
	// AllowAnonymous lets a caller with no identity proceed, with the
	// Anonymous rights, where clients are configured (without clients every
	// caller is anonymous).
	AllowAnonymous bool
	// Anonymous are the rights of a caller with no identity. Nil means all
	// rights without clients and none with clients.
	Anonymous *Rights
}

// Client is an authenticated caller, or the anonymous one, and its rights.
// Safe for concurrent use; immutable.
type Client struct {
	// ID is the client id; "" for the anonymous caller.
	ID      string
	hash    [sha256.Size]byte
	hasHash bool
	rights  rights
}

// Allowed keeps one bit per operation in a uint64.
var _ [64 - exotel.NumOperations]struct{}

// rights is Rights compiled for the request path.
type rights struct {
	allAccounts bool
	accounts    map[string]bool
	buckets     uint32          // bit per exotel.Bucket
	methods     map[string]bool // nil = all
	ops         uint64          // bit per exotel.Operation
}

// Allowed reports whether the client may make a request of method on
// route. A nil Client may do nothing.
func (c *Client) Allowed(route exotel.Route, method string) bool {
	if c == nil {
		return false
	}
	r := &c.rights
	if !r.allAccounts && !r.accounts[route.Account] {
		return false
	}
	if r.buckets&(1<<route.Bucket) == 0 || r.ops&(1<<route.Operation) == 0 {
		return false
	}
	return r.methods == nil || r.methods[method]
}

// Callers identifies the caller of each request. Safe for concurrent use.
type Callers struct {
	byID           map[string]*Client
	byCert         map[string]*Client // by "uri:…", "dns:…" (lower case), "cn:…"
	anonymous      *Client            // nil: a caller with no identity is refused
	dummy          [sha256.Size]byte
	allowAnonymous bool
}

// New builds the set of callers. It checks what the configuration's
// Validate checks too, so that a bad set never runs.
func New(cfg Config) (*Callers, error) {
	cs := &Callers{byID: map[string]*Client{}, byCert: map[string]*Client{}}
	for _, cc := range cfg.Clients {
		rt, err := compile(cc.Rights)
		if err != nil {
			return nil, fmt.Errorf("client %s: %w", cc.ID, err)
		}
		c := &Client{ID: cc.ID, rights: rt}
		if cc.ID == "" {
			return nil, errors.New("a client has no id")
		}
		if cc.SecretSHA256 != "" {
			b, err := hex.DecodeString(cc.SecretSHA256)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("client %s: secret_sha256 is not 64 hex digits", cc.ID)
			}
			copy(c.hash[:], b)
			c.hasHash = true
		}
		if _, dup := cs.byID[c.ID]; dup {
			return nil, fmt.Errorf("client %s configured twice", c.ID)
		}
		cs.byID[c.ID] = c
		if cc.CertIdentity != "" {
			key, err := certKey(cc.CertIdentity)
			if err != nil {
				return nil, fmt.Errorf("client %s: cert_identity: %w", c.ID, err)
			}
			if _, dup := cs.byCert[key]; dup {
				return nil, fmt.Errorf("client %s: cert_identity %q is another client's too", c.ID, cc.CertIdentity)
			}
			cs.byCert[key] = c
		}
	}
	switch {
	case cfg.Anonymous != nil:
		rt, err := compile(*cfg.Anonymous)
		if err != nil {
			return nil, fmt.Errorf("anonymous: %w", err)
		}
		cs.anonymous = &Client{rights: rt}
	case len(cfg.Clients) == 0:
		cs.anonymous = &Client{rights: rights{allAccounts: true, buckets: ^uint32(0), ops: ^uint64(0)}}
	default:
		cs.anonymous = &Client{} // no rights
	}
	cs.allowAnonymous = cfg.AllowAnonymous || len(cfg.Clients) == 0
	return cs, nil
}

// compile turns configured rights into the form Allowed checks.
func compile(r Rights) (rights, error) {
	var rt rights
	for _, a := range r.Accounts {
		if a == "*" {
			rt.allAccounts = true
			continue
		}
		if rt.accounts == nil {
			rt.accounts = map[string]bool{}
		}
		rt.accounts[strings.ToLower(a)] = true
	}
	if len(r.Buckets) == 0 {
		rt.buckets = ^uint32(0)
	}
	for _, name := range r.Buckets {
		b, ok := exotel.ParseBucket(name)
		if !ok {
			return rights{}, fmt.Errorf("%q is not a bucket", name)
		}
		rt.buckets |= 1 << b
	}
	if len(r.Methods) > 0 {
		rt.methods = map[string]bool{}
		for _, m := range r.Methods {
			rt.methods[strings.ToUpper(m)] = true
		}
	}
	if len(r.Operations) == 0 {
		// Every operation but OpNone, which no classified route has.
		rt.ops = ^uint64(0) &^ 1
	}
	for _, p := range r.Operations {
		ops, err := ExpandOperation(p)
		if err != nil {
			return rights{}, err
		}
		for _, op := range ops {
			rt.ops |= 1 << op
		}
	}
	return rt, nil
}

// ExpandOperation returns the operations a configured name stands for: an
// operation's name (calls.connect), or a pattern with "*" for the resource
// or the action (calls.*, *.read). A name or pattern that matches nothing
// is an error that lists the names.
func ExpandOperation(pattern string) ([]exotel.Operation, error) {
	res, act, ok := strings.Cut(pattern, ".")
	var out []exotel.Operation
	if ok {
		for _, op := range exotel.Operations() {
			r, a, _ := strings.Cut(op.String(), ".")
			if (res == "*" || res == r) && (act == "*" || act == a) {
				out = append(out, op)
			}
		}
	}
	if len(out) == 0 {
		names := make([]string, 0, exotel.NumOperations)
		for _, op := range exotel.Operations() {
			names = append(names, op.String())
		}
		return nil, fmt.Errorf("%q is not an operation (%s; or a pattern such as calls.* or *.read)", pattern, strings.Join(names, ", "))
	}
	return out, nil
}

// Identify returns the request's caller: by its verified TLS client
// certificate, else by HTTP Basic client id and secret, else the anonymous
// caller where one is allowed.
//
// With no clients configured every caller is anonymous, whatever it sends
// (Basic credentials are taken for stale Exotel credentials from a legacy
// caller, and replaced). With clients, it is ErrUnauthenticated when the
// identity is wrong or names no client — a wrong secret, an unknown id, a
// verified certificate mapped to no client and no Basic credentials — and
// when there is none and anonymous callers are not allowed.
func (cs *Callers) Identify(r *http.Request) (*Client, error) {
	if len(cs.byID) == 0 {
		return cs.anonymous, nil
	}
	certified := r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0
	if certified {
		if c := cs.byCertificate(r.TLS.PeerCertificates[0]); c != nil {
			return c, nil
		}
	}
	id, secret, ok := ParseBasic(r)
	if !ok {
		if r.Header.Get("Authorization") == "" && !certified && cs.allowAnonymous {
			return cs.anonymous, nil
		}
		return nil, ErrUnauthenticated
	}
	c, known := cs.byID[id]
	sum := sha256.Sum256([]byte(secret))
	want := cs.dummy
	if known && c.hasHash {
		want = c.hash
	}
	// Compare even for an unknown id, so timing tells nothing of the ids.
	if subtle.ConstantTimeCompare(sum[:], want[:]) == 1 && known && c.hasHash {
		return c, nil
	}
	return nil, ErrUnauthenticated
}

// oidSubjectAltName is the X.509 subjectAltName extension (RFC 5280 4.2.1.6).
var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// byCertificate maps a verified certificate to a client by the kind each
// client's cert_identity names: a URI SAN, a DNS SAN (ignoring case), or the
// subject CN, the CN only when the certificate has no SANs at all (RFC 6125:
// a CN beside SANs is not an identity). URI SANs are tried first, then DNS
// SANs, then the CN.
func (cs *Callers) byCertificate(cert *x509.Certificate) *Client {
	for _, u := range cert.URIs {
		if c := cs.byCert["uri:"+u.String()]; c != nil {
			return c
		}
	}
	for _, d := range cert.DNSNames {
		if c := cs.byCert["dns:"+strings.ToLower(d)]; c != nil {
			return c
		}
	}
	if cn := cert.Subject.CommonName; cn != "" && !hasSANs(cert) {
		return cs.byCert["cn:"+cn]
	}
	return nil
}

// hasSANs reports whether a certificate carries a subjectAltName extension
// of any kind, those Go does not parse included.
func hasSANs(cert *x509.Certificate) bool {
	if len(cert.URIs)+len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses) > 0 {
		return true
	}
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidSubjectAltName) {
			return true
		}
	}
	return false
}

// ParseCertIdentity checks a configured cert_identity: "uri:" and an
// absolute URI (spiffe://corp/billing), "dns:" and a DNS name, or "cn:" and
// a subject common name. It returns the kind and the value.
func ParseCertIdentity(s string) (kind, value string, err error) {
	kind, value, ok := strings.Cut(s, ":")
	if !ok || (kind != "uri" && kind != "dns" && kind != "cn") {
		return "", "", fmt.Errorf("%q names no kind: write uri:spiffe://trust-domain/path (a URI SAN), dns:host.example (a DNS SAN) or cn:Name (the subject CN, matched only on certificates without SANs)", s)
	}
	if value == "" || strings.TrimSpace(value) != value {
		return "", "", fmt.Errorf("%q: empty value, or spaces around it", s)
	}
	switch kind {
	case "uri":
		if u, err := url.Parse(value); err != nil || u.Scheme == "" || u.String() != value {
			return "", "", fmt.Errorf("%q: %q is not an absolute URI as a certificate carries it", s, value)
		}
	case "dns":
		if strings.ContainsAny(value, "/: ") {
			return "", "", fmt.Errorf("%q: %q is not a DNS name", s, value)
		}
	}
	return kind, value, nil
}

// certKey is the byCert key of a configured cert_identity.
func certKey(s string) (string, error) {
	kind, value, err := ParseCertIdentity(s)
	if err != nil {
		return "", err
	}
	if kind == "dns" {
		value = strings.ToLower(value)
	}
	return kind + ":" + value, nil
}

// ParseBasic returns the client id and secret of r's HTTP Basic
// credentials, as [http.Request.BasicAuth] reads them (RFC 7617: the scheme
// case-insensitive, the credentials base64 of "id:secret"). An empty id is
// not a client: ok is false, as it is without Basic credentials.
func ParseBasic(r *http.Request) (id, secret string, ok bool) {
	id, secret, ok = r.BasicAuth()
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
