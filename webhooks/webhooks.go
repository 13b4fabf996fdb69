// Package webhooks receives Exotel's callbacks (call StatusCallback, SMS
// delivery reports), checks them, keeps them in an embedded store and
// delivers them to internal services, signed per Standard Webhooks.
//
// The callback path runs one way: listener → checks (source, token, size,
// payload) → store (the acknowledgement: a callback answered 200 is on
// disk) → delivery (retries with backoff until delivered or dead). The
// store is this package's own: no other package opens it.
//
// The guarantee: an acknowledged callback is delivered at least once, and
// never twice under one id by one replica. Across replicas, a claim in
// Redis (Claimer) keeps a callback Exotel retried to another replica from
// being delivered twice while Redis answers.
package webhooks

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/rs/zerolog"
	"github.com/sony/gobreaker/v2"
)

// Kind is what a route receives.
type Kind string

const (
	KindCall Kind = "call" // a call's StatusCallback
	KindSMS  Kind = "sms"  // an SMS delivery report
)

// Verify is a route's authenticity check beyond the URL token.
type Verify string

const (
	VerifyNone   Verify = "none"
	VerifyExotel Verify = "exotel" // the Sid must exist in the account, with a status that agrees
)

// Retry bounds a route's delivery retries. Zero values take the defaults.
type Retry struct {
	MaxAge      time.Duration // after this since receipt a message is dead; default 24h
	MaxInterval time.Duration // the cap on one backoff interval; default 5m
}

// Defaults documented where they apply.
const (
	DefaultMaxBody        = 64 << 10
	DefaultRetention      = 72 * time.Hour
	DefaultMaxAge         = 24 * time.Hour
	DefaultMaxInterval    = 5 * time.Minute
	DefaultConcurrency    = 4
	DefaultDeliverTimeout = 10 * time.Second
)

// Route is one destination for one account's callbacks of one kind.
type Route struct {
	Name    string // in the URL: /hooks/{Name}/{token}
	Account string // the account SID the callbacks belong to
	Kind    Kind
	Target  string // the internal service's URL
	// SigningSecret signs deliveries (Standard Webhooks, "whsec_<base64>"
	// or raw bytes). Several space-separated secrets sign with each
	// during a rotation.
	SigningSecret  string
	Verify         Verify
	ReconcileAfter time.Duration // 0 = off; call routes only
	Retry          Retry
	Concurrency    int // deliveries in flight to Target; 0 = DefaultConcurrency
}

// Config is the webhook listener's configuration. Secrets are values
// here: main resolves the environment variables that name them.
type Config struct {
	PublicURL         string // e.g. https://hooks.example.com, without /hooks
	URLSecret         []byte // derives each route's URL token
	PreviousURLSecret []byte // still accepted during a rotation; nil = none
	// SourceCIDRs admits callbacks only from these ranges; empty = any.
	SourceCIDRs []netip.Prefix
	// TrustedProxies may set X-Forwarded-For; the right-most address not
	// in this list is the source.
	TrustedProxies []netip.Prefix
	MaxBody        int64         // 0 = DefaultMaxBody
	Retention      time.Duration // dedupe keys and finished messages; 0 = DefaultRetention
	Routes         []Route
	// Breaker is the per-route circuit breaker's settings (Name and
	// callbacks are set per route).
	Breaker gobreaker.Settings
}

// Deps is what the service takes from the running gateway.
type Deps struct {
	Log   zerolog.Logger
	Clock func() time.Time // nil = time.Now
	// Client delivers to targets; nil = a client with DefaultDeliverTimeout.
	Client Doer
	// Lookup asks Exotel for a call or SMS through the gateway's own
	// outbound path (credentials, rate limit). Needed by routes with
	// verify: exotel or reconcile_after; nil disables both.
	Lookup Lookup
	// Claimer claims a dedupe key across replicas; nil = this replica only.
	Claimer Claimer
	// Replica labels this process in claims (e.g. the hostname). Open
	// appends the store's identity, which is what tells replicas apart.
	Replica string
}

// Doer sends one HTTP request.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Lookup fetches what Exotel knows of a call or an SMS by its Sid.
// It returns ErrNotFound when the account has no such Sid.
type Lookup func(ctx context.Context, account string, kind Kind, sid string) (Details, error)

// Details is Exotel's record of a call or SMS, as far as the callback
// path needs it.
type Details struct {
	Sid    string
	Status string // Exotel's status word, e.g. completed, in-progress, sent
	// Fields are the record's other fields, used to build a synthetic
	// callback (DateUpdated, RecordingUrl, To, From, ...).
	Fields map[string]string
}

// ErrNotFound is Lookup's answer for a Sid the account does not have.
var ErrNotFound = errors.New("webhooks: not found at Exotel")

// Claimer claims a key for one replica for ttl. It reports whether this
// replica holds the claim (a new claim, or one it already held).
type Claimer interface {
	Claim(ctx context.Context, key, replica string, ttl time.Duration) (bool, error)
}

// Callback is a parsed, valid callback.
type Callback struct {
	Kind      Kind
	Sid       string // CallSid or SmsSid
	Status    string
	EventType string // calls: answered or terminal ("" when Exotel sent none)
	// DetailedStatusCode is the SMS report's code ("" for calls).
	DetailedStatusCode string
}

// DedupeKey is the idempotency key of a callback within a route: Exotel's
// repeat of one event has the same key.
func (c Callback) DedupeKey(route string) string {
	if c.Kind == KindSMS {
		return route + "|sms|" + c.Sid + "|" + c.Status + "|" + c.DetailedStatusCode
	}
	// A call callback without EventType is the terminal one (Terminal):
	// it shares its key with a terminal callback that names it, such as
	// the one reconciliation synthesizes.
	ev := c.EventType
	if ev == "" {
		ev = "terminal"
	}
	return route + "|call|" + c.Sid + "|" + c.Status + "|" + ev
}

// Terminal reports whether the callback ends the call's story (the one a
// reconciliation waits for). A call callback without EventType is
// terminal: Exotel sends only the terminal one unless asked for more.
func (c Callback) Terminal() bool {
	return c.Kind == KindCall && (c.EventType == "" || c.EventType == "terminal")
}

// State is where a stored message is in its delivery.
type State string

const (
	StatePending   State = "pending"
	StateDelivered State = "delivered"
	StateDead      State = "dead"
)

// Source says where a message came from.
type Source string

const (
	SourceExotel Source = "exotel" // Exotel called the listener
	SourcePoll   Source = "poll"   // synthesized by reconciliation from the Call Details API
)

// Message is a stored callback and its delivery state.
type Message struct {
	ID          string // the webhook-id: stable across retries and replays
	Route       string
	Account     string
	Key         string // the dedupe key
	Sid         string
	Terminal    bool
	ContentType string
	Body        []byte
	Source      Source
	ReceivedAt  time.Time
	State       State
	Attempts    int
	NextAttempt time.Time
	LastError   string // the last attempt's result, no secrets
	Variants    int    // repeats with the same key and a different body
}

// Outcome is what the store did with an accepted callback.
type Outcome int

const (
	Accepted  Outcome = iota // new: stored, to be delivered
	Duplicate                // same key, same body: nothing new
	Variant                  // same key, different body: counted, not delivered again
)
