// Package credentials owns exogate's secrets: it loads each account's Exotel
// API key and token from its source (environment variables, files, or
// HashiCorp Vault), keeps them in memory as immutable values swapped
// atomically when they are rotated, and writes the HTTP Basic header onto an
// outgoing request. No other package sees a key or a token: the proxy asks a
// Store to authorize a request for an account and never holds the values.
//
// A Credential never prints its values: String, GoString, Format, MarshalJSON,
// MarshalText and zerolog's MarshalZerologObject all render "[redacted]", so a
// stray log line, %v or panic cannot leak one.
package credentials

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrUnknownAccount means the store serves no such account.
	ErrUnknownAccount = errors.New("credentials: unknown account")
	// ErrUnavailable means the account is configured but has no usable
	// credentials yet.
	ErrUnavailable = errors.New("credentials: no credentials available for account")
)

const redacted = "[redacted]"

// Credential is one Exotel API key and token pair, immutable once made. The
// zero value holds nothing and authorizes nothing.
type Credential struct {
	header    []string // {"Basic base64(key:token)"}, shared, never mutated
	source    string
	version   string
	loadedAt  time.Time
	createdAt time.Time
}

// NewCredential makes a Credential from a key and a token; both must be
// non-empty. source names where it came from ("env", "file", "vault");
// version identifies it without revealing it.
func NewCredential(key, token, source, version string, loadedAt time.Time) (*Credential, error) {
	if key == "" || token == "" {
		return nil, errors.New("credentials: API key and token must both be set")
	}
	if strings.ContainsAny(key, ":\r\n") || strings.ContainsAny(token, "\r\n") {
		return nil, errors.New("credentials: API key must not contain ':' or a line break, nor the token a line break")
	}
	enc := base64.StdEncoding.EncodeToString([]byte(key + ":" + token))
	return &Credential{header: []string{"Basic " + enc}, source: source, version: version, loadedAt: loadedAt}, nil
}

// Source reports where the credential came from.
func (c *Credential) Source() string { return c.source }

// Version identifies the credential without revealing it.
func (c *Credential) Version() string { return c.version }

// LoadedAt is when the credential was loaded: since when it is in use.
func (c *Credential) LoadedAt() time.Time { return c.loadedAt }

// CreatedAt is when the credential was made, as its source tells it:
// Vault's created_time for KV v2, the newer modification time of the two
// files, the first time exogate read it for KV v1, start-up for the
// environment. Its age is what rotation.max_age is measured against.
func (c *Credential) CreatedAt() time.Time {
	if c.createdAt.IsZero() {
		return c.loadedAt
	}
	return c.createdAt
}

// withCreated returns c with its creation time set (zero: unknown, the
// load time stands for it).
func (c *Credential) withCreated(t time.Time) *Credential {
	c.createdAt = t
	return c
}

// Fingerprint labels a key and token pair without revealing it: the first
// 32 bits of a SHA-256 over both, enough to tell one pair from the next and
// the same on every replica that reads the same pair (the version label of
// sources that have no version numbers of their own: files and KV v1).
// From 32 bits nothing of a random 40-character token can be recovered.
func Fingerprint(key, token string) string {
	sum := sha256.Sum256([]byte("exogate-credential\x00" + key + "\x00" + token))
	return hex.EncodeToString(sum[:4])
}

// same reports whether c and o hold the same key and token.
func (c *Credential) same(o *Credential) bool {
	return c != nil && o != nil && c.header[0] == o.header[0]
}

// String implements fmt.Stringer without revealing the secret.
func (c *Credential) String() string { return redacted }

// GoString implements fmt.GoStringer without revealing the secret.
func (c *Credential) GoString() string { return redacted }

// Format implements fmt.Formatter so that every verb, %#v and %+v included,
// prints "[redacted]".
func (c *Credential) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON implements json.Marshaler without revealing the secret.
func (c *Credential) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler without revealing the secret.
func (c *Credential) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// MarshalZerologObject logs only the credential's metadata.
func (c *Credential) MarshalZerologObject(e *zerolog.Event) {
	e.Str("source", c.source).Str("version", c.version).Time("loaded_at", c.loadedAt)
}
