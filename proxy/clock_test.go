package proxy

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/callers"
)

// deadlineRecorder is a ResponseWriter that records the write deadline set
// on it through http.ResponseController.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	deadline time.Time
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	d.deadline = t
	return nil
}

// TestDeadlinesOnTheHandlersClock: the deadline of a wait in line and the
// write deadline are instants on Config.Now, the clock the limiters read
// the deadline against, not on time.Now.
func TestDeadlinesOnTheHandlersClock(t *testing.T) {
	// Far from the wall clock, and after it, so that a context deadline set
	// from it has not passed.
	t0 := time.Date(2100, 1, 2, 3, 4, 5, 0, time.UTC)
	const maxWait, writeTimeout = 3 * time.Second, 5 * time.Second
	cs, err := callers.New(callers.Config{
		Clients: []callers.ClientConfig{{ID: "app", SecretSHA256: callers.HashSecret("app-secret"), Rights: callers.Rights{Accounts: []string{"*"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var clientDeadline, accountDeadline time.Time
	target := &url.URL{Scheme: "https", Host: "api.exotel.com"}
	h, err := New(Config{
		Accounts:   []Account{{SID: "acme", API: target, CCM: target}},
		Authorizer: &versionAuthorizer{creds: basic(testKey, testToken), version: "v1"},
		Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody}, nil
		}),
		Now:          func() time.Time { return t0 },
		Callers:      cs,
		MaxWait:      maxWait,
		WriteTimeout: writeTimeout,
		ClientLimiter: &fakeClientLimiter{admit: func(ctx context.Context, _, _, _ string) (time.Duration, error) {
			clientDeadline, _ = ctx.Deadline()
			return 0, nil
		}},
		Limiter: &fakeLimiter{admit: func(ctx context.Context, _, _ string) (time.Duration, error) {
			accountDeadline, _ = ctx.Deadline()
			return 0, nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}

	req := httptest.NewRequest("GET", "/v1/Accounts/acme/Calls.json", nil)
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("app:app-secret")))
	w := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
	h.ServeHTTP(w, req)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if want := t0.Add(maxWait); !clientDeadline.Equal(want) || !accountDeadline.Equal(want) {
		t.Errorf("wait deadlines %v (client's cap) and %v (account's limit), want %v", clientDeadline, accountDeadline, want)
	}
	if want := t0.Add(writeTimeout); !w.deadline.Equal(want) {
		t.Errorf("write deadline %v, want %v", w.deadline, want)
	}
}
