package main

import (
	"os"
	"sync"

	"github.com/exogate/exogate/webhooks"
)

// fsyncFloor appends each message's body to a file and fsyncs it, one at a
// time: the disk's own cost of one durable write, which no store beats
// without sharing an fsync among callers.
type fsyncFloor struct {
	mu sync.Mutex
	f  *os.File
}

func (b *fsyncFloor) accept(m webhooks.Message) (webhooks.Outcome, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.f.Write(m.Body); err != nil {
		return 0, err
	}
	return webhooks.Accepted, b.f.Sync()
}

func (b *fsyncFloor) close() error { return b.f.Close() }

func fsyncContender() contender {
	return contender{
		name: "floor: append + fsync, one at a time",
		open: func(path string) (backend, error) {
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
			return &fsyncFloor{f: f}, err
		},
	}
}
