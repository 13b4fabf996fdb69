package sandbox_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/exogate/exogate/sandbox"
)

// A service's own test places a call on the simulator, as it would on
// Exotel, and receives the call's StatusCallback: a To ending in 5 is busy.
func Example() {
	sim := sandbox.New(sandbox.Config{
		Accounts: []sandbox.Account{{SID: "acme", Key: "test_key", Token: "test_token"}},
		Seed:     1,
		Ring:     10 * time.Millisecond,
	})
	defer sim.Close()
	exotel := httptest.NewServer(sim)
	defer exotel.Close()

	statuses := make(chan string, 1)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseMultipartForm(1 << 20) // Exotel sends call callbacks as multipart/form-data
		statuses <- r.FormValue("Status")
	}))
	defer receiver.Close()

	form := url.Values{"From": {"09876543210"}, "To": {"08012345675"}, "CallerId": {"08039591000"},
		"StatusCallback": {receiver.URL}}
	req, _ := http.NewRequest(http.MethodPost, exotel.URL+"/v1/Accounts/acme/Calls/connect.json", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("test_key", "test_token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var placed struct{ Call struct{ Status string } }
	_ = json.NewDecoder(resp.Body).Decode(&placed)
	fmt.Println(resp.StatusCode, placed.Call.Status)

	select {
	case s := <-statuses:
		fmt.Println("callback:", s)
	case <-time.After(10 * time.Second):
		fmt.Println("no callback")
	}
	// Output:
	// 200 in-progress
	// callback: busy
}
