// Package credentials owns exogate's secrets: it loads each account's Exotel
// API key and token, keeps them in memory as immutable values, and writes the
// HTTP Basic header onto an outgoing request. No other package sees a key or a
// token: the proxy asks a Store to authorize a request for an account and never
// holds the values itself.
//
// A Credential never prints its values: String, GoString, Format, MarshalJSON,
// MarshalText and zerolog's MarshalZerologObject all render "[redacted]", so a
// stray log line, %v or panic cannot leak one.
package credentials

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
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
	header   []string // {"Basic base64(key:token)"}, shared, never mutated
	source   string
	version  string
	loadedAt time.Time
}

// NewCredential makes a Credential from a key and a token; both must be
// non-empty. source names where it came from ("env"), version identifies it
// without revealing it (for env, a hash prefix is not used: the source's own
// version or "1").
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

// LoadedAt is when the credential was loaded.
func (c *Credential) LoadedAt() time.Time { return c.loadedAt }

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

// Spec says where one account's credentials come from.
type Spec struct {
	Account     string // lower-case account SID
	Source      string // "env"
	APIKeyEnv   string // env: variable holding the API key
	APITokenEnv string // env: variable holding the API token
}

// Store holds the live credential of every configured account. Its set of
// accounts is fixed when it is made; the credential of each can be swapped
// atomically while requests are in flight. Safe for concurrent use.
type Store struct {
	accounts map[string]*slot
	now      func() time.Time
}

type slot struct {
	cur atomic.Pointer[Credential]
}

// NewStore loads every account's credentials from its source. getenv reads
// the environment (os.Getenv in production). A variable that is not set is an
// error naming it, and no value is ever part of an error.
func NewStore(specs []Spec, getenv func(string) string) (*Store, error) {
	s := &Store{accounts: make(map[string]*slot, len(specs)), now: time.Now}
	var errs []error
	for _, sp := range specs {
		sl := &slot{}
		s.accounts[sp.Account] = sl
		switch sp.Source {
		case "env":
			var missing []string
			key, token := getenv(sp.APIKeyEnv), getenv(sp.APITokenEnv)
			if key == "" {
				missing = append(missing, sp.APIKeyEnv)
			}
			if token == "" {
				missing = append(missing, sp.APITokenEnv)
			}
			if len(missing) > 0 {
				errs = append(errs, fmt.Errorf("account %s: missing required environment variable %s", sp.Account, strings.Join(missing, ", ")))
				continue
			}
			c, err := NewCredential(key, token, "env", "1", s.now())
			if err != nil {
				errs = append(errs, fmt.Errorf("account %s: %s: %w", sp.Account, sp.APIKeyEnv+"/"+sp.APITokenEnv, err))
				continue
			}
			sl.cur.Store(c)
		default:
			errs = append(errs, fmt.Errorf("account %s: unsupported credentials source %q", sp.Account, sp.Source))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Authorize sets the request's Authorization header to the account's HTTP
// Basic credentials, replacing whatever was there. It returns
// ErrUnknownAccount or ErrUnavailable and leaves the header removed when it
// cannot.
func (s *Store) Authorize(h http.Header, account string) error {
	sl, ok := s.accounts[account]
	if !ok {
		delete(h, "Authorization")
		return ErrUnknownAccount
	}
	c := sl.cur.Load()
	if c == nil {
		delete(h, "Authorization")
		return ErrUnavailable
	}
	h["Authorization"] = c.header
	return nil
}

// Current returns the account's live credential (nil if none). Its methods
// give metadata only.
func (s *Store) Current(account string) *Credential {
	if sl, ok := s.accounts[account]; ok {
		return sl.cur.Load()
	}
	return nil
}

// Swap replaces the account's live credential atomically; requests already
// authorized keep the value they were given.
func (s *Store) Swap(account string, c *Credential) error {
	sl, ok := s.accounts[account]
	if !ok {
		return ErrUnknownAccount
	}
	if c == nil || len(c.header) == 0 {
		return ErrUnavailable
	}
	sl.cur.Store(c)
	return nil
}

// Ready reports whether every account has credentials.
func (s *Store) Ready() bool {
	for _, sl := range s.accounts {
		if sl.cur.Load() == nil {
			return false
		}
	}
	return true
}
