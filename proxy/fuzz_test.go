package proxy

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// phoneDigits is the shortest run of digits taken for a phone number: an
// Indian subscriber number without its prefixes has 10, landlines with STD
// code 10 or 11; 7 leaves room for local numbers and short fragments.
const phoneDigits = 7

// digitRuns returns the runs of at least n consecutive ASCII digits in s.
func digitRuns(s string, n int) []string {
	var runs []string
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j-i >= n {
			runs = append(runs, s[i:j])
		}
		if j == i {
			j++
		}
		i = j
	}
	return runs
}

// FuzzRedactURI checks that the access log's request target never carries
// a query value: every value becomes "*", the keys and the path stay as they
// are, and no phone-number-length run of digits from a value is in the
// output unless the path or a key holds it too.
func FuzzRedactURI(f *testing.F) {
	f.Add("/v1/Accounts/acme/Sms/send.json?From=08012345678&To=%2B919876543210&Body=hi")
	f.Add("/v1/Accounts/acme/Calls.json?PageSize=50&Before=9876543210&After")
	f.Add("/p?a=1&&b==9876543210&=98765432101&c")
	f.Add("/p?")
	f.Add("/p")
	f.Add("http://k:t@h/p?a=9876543210")
	f.Add("*")
	f.Fuzz(func(t *testing.T, uri string) {
		got := redactURI(uri)
		if !strings.HasPrefix(uri, "/") {
			if got != "[not a path]" {
				t.Fatalf("redactURI(%q) = %q, want it withheld", uri, got)
			}
			return
		}
		path, query, hasQuery := strings.Cut(uri, "?")
		gotPath, gotQuery, gotHasQuery := strings.Cut(got, "?")
		if gotPath != path || gotHasQuery != hasQuery {
			t.Fatalf("redactURI(%q) = %q: the path or its '?' changed", uri, got)
		}
		if !hasQuery {
			return
		}
		pairs, gotPairs := strings.Split(query, "&"), strings.Split(gotQuery, "&")
		if n := len(pairs); n > 1 && pairs[n-1] == "" {
			pairs = pairs[:n-1] // a trailing '&' names nothing and is dropped
		}
		if len(gotPairs) != len(pairs) {
			t.Fatalf("redactURI(%q) = %q: %d pairs, want %d", uri, got, len(gotPairs), len(pairs))
		}
		// Where digits may legitimately appear in the output: the path and
		// the keys.
		kept := path
		for i, p := range pairs {
			key, _, hasValue := strings.Cut(p, "=")
			gotKey, gotValue, gotHasValue := strings.Cut(gotPairs[i], "=")
			if gotKey != key || gotHasValue != hasValue || (hasValue && gotValue != "*") {
				t.Fatalf("redactURI(%q) = %q: pair %q became %q, want its key and =*", uri, got, p, gotPairs[i])
			}
			kept += "\x00" + key
		}
		for _, p := range pairs {
			_, value, _ := strings.Cut(p, "=")
			for _, run := range digitRuns(value, phoneDigits) {
				if strings.Contains(got, run) && !strings.Contains(kept, run) {
					t.Fatalf("redactURI(%q) = %q: holds %s from a query value", uri, got, run)
				}
			}
		}
	})
}

// FuzzParseRetryAfter checks that whatever Exotel (or a box between)
// sends as Retry-After, the pause read from it is never negative, never
// over 24h, and that a plain count of seconds in range is read exactly.
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC).Unix()
	f.Add("120", now)
	f.Add(" 5 ", now)
	f.Add("-1", now)
	f.Add("86401", now)
	f.Add("9223372036854775807", now)
	f.Add("Fri, 27 Nov 2026 12:00:30 GMT", now)
	f.Add("Sat, 28 Nov 2026 12:00:00 GMT", now)
	f.Add("Sun, 06 Nov 1994 08:49:37 GMT", int64(-1<<62))
	f.Add("Friday, 31-Dec-99 23:59:59 GMT", int64(1<<62))
	f.Fuzz(func(t *testing.T, v string, nowUnix int64) {
		d := parseRetryAfter(v, time.Unix(nowUnix, 0))
		if d < 0 || d > 24*time.Hour {
			t.Fatalf("parseRetryAfter(%q, %d) = %v, want within [0, 24h]", v, nowUnix, d)
		}
		if secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && secs > 0 && secs <= 24*3600 {
			if d != time.Duration(secs)*time.Second {
				t.Fatalf("parseRetryAfter(%q) = %v, want %ds", v, d, secs)
			}
		}
	})
}

// FuzzRewrite checks the request rewrite on requests as net/http reads
// them off the wire: whatever the caller sends, the request written
// upstream goes to the target's host, its request line carries the
// caller's path and query byte for byte, and only allowlisted headers are
// left (the ReverseProxy's Rewrite then has the Authorizer set the
// account's own Authorization).
func FuzzRewrite(f *testing.F) {
	f.Add("/v1/Accounts/acme/Sms/send.json?To=%2B919876543210", "Content-Type", "application/json", "Basic YTpi")
	f.Add("/v1/Accounts/acme//Calls/connect.json", "X-Request-Id", "req-1", "")
	f.Add("/v1/Accounts/acme/Calls.json?", "X-HTTP-Method-Override", "DELETE", "Bearer x")
	f.Add("/v2/accounts/acme/campaigns/%7e?a=b&c", "X-Request-Id", "two words", "")
	f.Add("/a%2fb;c?d#e", "Idempotency-Key", "k", "")
	f.Add("/p", "X-Forwarded-Host", "evil.example", "")
	target := &url.URL{Scheme: "https", Host: "api.exotel.com"}
	f.Fuzz(func(t *testing.T, uri, name, value, authz string) {
		raw := "GET " + uri + " HTTP/1.1\r\nHost: caller.example\r\n" +
			"Authorization: " + authz + "\r\n" +
			name + ": " + value + "\r\n" +
			"X-Forwarded-For: 192.0.2.1\r\n\r\n"
		in, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return // net/http would have refused it
		}
		// The handler refuses targets that are not a path, and Classify
		// those starting "//", before any request is rewritten.
		if !strings.HasPrefix(in.RequestURI, "/") || strings.HasPrefix(in.RequestURI, "//") {
			return
		}
		out := in.Clone(context.Background())
		rewrite(&httputil.ProxyRequest{In: in, Out: out}, target)

		if out.URL.Host != target.Host || out.Host != target.Host || out.URL.Scheme != target.Scheme || out.URL.User != nil {
			t.Fatalf("rewritten to %s://%s (Host %q), want %s", out.URL.Scheme, out.URL.Host, out.Host, target)
		}
		for k, v := range out.Header {
			if !upstreamHeaders[k] {
				t.Fatalf("header %q (not allowlisted) goes upstream", k)
			}
			if k == "X-Request-Id" && (len(v) != 1 || !isToken(v[0], 128)) {
				t.Fatalf("X-Request-Id %q goes upstream", v)
			}
		}

		var wire bytes.Buffer
		if err := out.Write(&wire); err != nil {
			t.Fatalf("writing the rewritten request: %v", err)
		}
		sent, err := http.ReadRequest(bufio.NewReader(&wire))
		if err != nil {
			t.Fatalf("the request written upstream does not read back: %v\n%s", err, wire.String())
		}
		if sent.RequestURI != in.RequestURI {
			t.Fatalf("request target %q went upstream as %q", in.RequestURI, sent.RequestURI)
		}
		if sent.Host != target.Host {
			t.Fatalf("Host %q went upstream, want %q", sent.Host, target.Host)
		}
		if sent.Header.Get("Authorization") != "" {
			t.Fatal("the caller's Authorization went upstream")
		}
	})
}
