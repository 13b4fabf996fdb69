package fakeexotel

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/exogate/exogate/internal/testutil"
)

func TestCallbacksStayOnLoopback(t *testing.T) {
	var got atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got.Add(1) }))
	defer rcv.Close()
	c := loopbackClient()
	resp, err := c.Post(rcv.URL, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatalf("loopback: %v", err)
	}
	resp.Body.Close()
	testutil.Eventually(t, 10*time.Second, "the loopback callback", func() bool { return got.Load() == 1 })
	if _, err := c.Post("http://192.0.2.1/hook", "text/plain", strings.NewReader("x")); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("off the machine: %v", err)
	}
}
