package webhooks

import "time"

// queue is the store as the callback path uses it.
type queue interface {
	Accept(m Message) (Outcome, Message, error)
	Due(route string, now time.Time, n int, skip func(id string) bool) ([]Message, error)
	NextDue(route string) (at time.Time, ok bool, err error)
	Reschedule(id string, next time.Time, lastErr string) error
	Finish(id string, st State, lastErr string) error
	Get(id string) (Message, error)
	List(route string, st State, limit int) ([]Message, error)
	Replay(route, id string) (int, error)
	ReplayState(route string, st State) (int, error)
	Stats() (map[string]RouteStats, error)
	Sweep(now time.Time) (int, error)
	Expect(e Expectation) error
	DueExpectations(now time.Time, n int) ([]Expectation, error)
	Postpone(route, sid string, at time.Time) error
	Fulfil(route, sid string) error
	Close() error
}

var _ queue = (*Store)(nil)
