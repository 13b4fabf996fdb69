package webhooks

import (
	"errors"
	"time"
)

// Placeholders for the store's types until store.go lands.

type StoreOptions struct {
	Clock     func() time.Time
	Retention time.Duration
}

type RouteStats struct {
	Pending, Delivered, Dead int
	OldestPending            time.Time
}

type Expectation struct {
	Route, Account, Sid string
	At                  time.Time
}

var ErrNoMessage = errors.New("webhooks: no such message")

func openStore(path string, o StoreOptions) (queue, error) {
	return nil, errors.New("webhooks: store not available")
}
