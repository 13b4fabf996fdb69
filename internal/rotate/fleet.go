package rotate

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/exogate/exogate/internal/gateway"
)

// fleet asks replicas to take a new credential version and waits for each
// to report it in use.
type fleet struct {
	client  *http.Client
	token   string // admin bearer token ("": none)
	sid     string
	version string

	mu  sync.Mutex // guards out
	out io.Writer
}

// Intervals of the wait: how often a replica's status is read, and how
// often a replica that still reports another version is asked again to
// refresh.
const (
	pollEvery    = 250 * time.Millisecond
	refreshEvery = 5 * time.Second
)

// confirm waits, at most timeout, until every replica reports f.version in
// use with Exotel accepting it, printing one line per replica as it does.
// It returns a description of each replica that did not.
func (f *fleet) confirm(ctx context.Context, replicas []string, timeout time.Duration) []string {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	results := make([]string, len(replicas))
	var wg sync.WaitGroup
	for i, r := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = f.replica(ctx, r)
		}()
	}
	wg.Wait()
	var missing []string
	for i, r := range results {
		if r != "" {
			missing = append(missing, replicas[i]+" ("+r+")")
		}
	}
	return missing
}

// replica drives one replica until it confirms (""), or ctx ends (what it
// last reported). A replica confirms when it uses the new version and
// Exotel has accepted it there (its live traffic, or the credential test
// that /-/refresh sends), and not the previous one since.
func (f *fleet) replica(ctx context.Context, base string) string {
	last := "not reached"
	var lastRefresh time.Time
	waitingLogged := false
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		var st gateway.CredentialStatus
		var err error
		if time.Since(lastRefresh) >= refreshEvery {
			st, err = f.refresh(ctx, base)
			if err == nil {
				lastRefresh = time.Now()
			}
		} else {
			st, err = f.status(ctx, base)
		}
		switch {
		case err != nil:
			last = err.Error()
		case st.Version != f.version:
			last = "uses " + orNone(st.Version)
		case st.PreviousAcceptedAt != nil:
			last = "uses " + st.Version + ", but Exotel refuses it there and accepts the previous version " + st.PreviousVersion
			if !waitingLogged {
				waitingLogged = true
				f.print("  %s  %s, but Exotel still accepts only the previous version there: waiting\n", base, st.Version)
			}
		case st.AcceptedAt == nil:
			last = "uses " + st.Version + ", but Exotel has not answered a call with it there yet"
		default:
			since := "unknown"
			if st.InUseSince != nil {
				since = st.InUseSince.Format(time.RFC3339)
			}
			f.print("  %s  %s  since %s\n", base, st.Version, since)
			return ""
		}
		select {
		case <-ctx.Done():
			return last
		case <-tick.C:
		}
	}
}

// replicaURLs is urls without trailing slashes, each once, in their first
// order: a replica listed twice would be asked and counted twice.
func replicaURLs(urls []string) []string {
	var out []string
	for _, u := range urls {
		if u = strings.TrimRight(u, "/"); !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

func orNone(v string) string {
	if v == "" {
		return "no credentials"
	}
	return v
}

func (f *fleet) print(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fmt.Fprintf(f.out, format, args...)
}

// refresh asks the replica to read the account's source now.
func (f *fleet) refresh(ctx context.Context, base string) (gateway.CredentialStatus, error) {
	var answer struct {
		Credentials gateway.CredentialStatus `json:"credentials"`
		Error       string                   `json:"error"`
	}
	err := f.call(ctx, http.MethodPost, base+"/-/refresh?account="+url.QueryEscape(f.sid), &answer)
	if err != nil && answer.Error != "" {
		err = fmt.Errorf("%s", answer.Error)
	}
	return answer.Credentials, err
}

// status reads the account's credential status from the replica's /status.
func (f *fleet) status(ctx context.Context, base string) (gateway.CredentialStatus, error) {
	var st gateway.Status
	if err := f.call(ctx, http.MethodGet, base+"/status", &st); err != nil {
		return gateway.CredentialStatus{}, err
	}
	for _, a := range st.Accounts {
		if a.SID == f.sid {
			return a.Credentials, nil
		}
	}
	return gateway.CredentialStatus{}, fmt.Errorf("serves no account %s", f.sid)
}

// call makes one admin request and decodes its JSON answer into v.
func (f *fleet) call(ctx context.Context, method, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	if f.token != "" && method != http.MethodGet {
		req.Header.Set("Authorization", "Bearer "+f.token)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return fmt.Errorf("unreachable: %s", shortError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading the answer: %s", shortError(err))
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if jerr := json.Unmarshal(body, v); jerr != nil && resp.StatusCode == http.StatusOK {
			return fmt.Errorf("unreadable answer: %v", jerr)
		}
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s answered %s: %s", method, strings.SplitN(u, "?", 2)[0], resp.Status, strings.TrimSpace(firstLine(body)))
	}
	return nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// shortError is err without the URL a *url.Error repeats.
func shortError(err error) string {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err.Error()
	}
	return err.Error()
}
