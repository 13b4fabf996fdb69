package main

import (
	"fmt"
	"time"

	"github.com/exogate/exogate/webhooks"
)

// bboltStore is the webhooks package's own store.
type bboltStore struct{ s *webhooks.Store }

func (b bboltStore) accept(m webhooks.Message) (webhooks.Outcome, error) {
	out, _, err := b.s.Accept(m)
	return out, err
}

func (b bboltStore) close() error { return b.s.Close() }

func bboltContender(delay time.Duration) contender {
	return contender{
		name: fmt.Sprintf("bbolt, batch delay %s", delay),
		open: func(path string) (backend, error) {
			s, err := webhooks.OpenStore(path, webhooks.StoreOptions{BatchDelay: delay})
			return bboltStore{s}, err
		},
	}
}
