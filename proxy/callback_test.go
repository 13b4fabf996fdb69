package proxy

import (
	"bytes"
	"errors"
	"mime/multipart"
	"net/url"
	"strings"
	"testing"
)

func resolveHooks(route string) (string, error) {
	if route == "calls" {
		return "https://hooks.example.com/hooks/calls/T0k3n", nil
	}
	return "", errors.New("no webhook route " + route)
}

func TestSubstituteCallbacksForm(t *testing.T) {
	in := "From=0999&To=0888&CallerId=0111&StatusCallback=exogate%3A%2F%2Fcalls&StatusCallbackEvents%5B0%5D=terminal&CustomField=a%2Bb"
	out, routes, err := substituteCallbacks([]byte(in), "application/x-www-form-urlencoded", resolveHooks)
	if err != nil {
		t.Fatal(err)
	}
	q, err := url.ParseQuery(string(out))
	if err != nil {
		t.Fatal(err)
	}
	if got := q.Get("StatusCallback"); got != "https://hooks.example.com/hooks/calls/T0k3n" {
		t.Errorf("StatusCallback = %q", got)
	}
	if len(routes) != 1 || routes[0] != "calls" {
		t.Errorf("routes %v", routes)
	}
	// Every other pair is untouched, byte for byte.
	want := strings.Replace(in, "exogate%3A%2F%2Fcalls", url.QueryEscape("https://hooks.example.com/hooks/calls/T0k3n"), 1)
	if string(out) != want {
		t.Errorf("body\n%s\nwant\n%s", out, want)
	}
	// A literal exogate:// (unescaped) is recognised too.
	out, _, err = substituteCallbacks([]byte("StatusCallback=exogate://calls"), "", resolveHooks)
	if err != nil || !strings.Contains(string(out), url.QueryEscape("https://hooks.example.com/")) {
		t.Errorf("unescaped: %s %v", out, err)
	}
}

func TestSubstituteCallbacksLeavesOtherBodiesAlone(t *testing.T) {
	for _, body := range []string{
		"From=0999&To=0888&StatusCallback=https%3A%2F%2Fmine.example.com%2Fcb",
		"Body=exogate is great",
		`{"StatusCallback":"https://mine.example.com/cb"}`,
		"",
	} {
		out, routes, err := substituteCallbacks([]byte(body), "application/x-www-form-urlencoded", resolveHooks)
		if err != nil || string(out) != body || routes != nil {
			t.Errorf("%q → %q, %v, %v", body, out, routes, err)
		}
	}
}

func TestSubstituteCallbacksUnknownRoute(t *testing.T) {
	for ct, body := range map[string]string{
		"application/x-www-form-urlencoded": "StatusCallback=exogate%3A%2F%2Fbilling",
		"application/json":                  `{"status_callback":[{"event":"terminal","url":"exogate://billing"}]}`,
	} {
		_, _, err := substituteCallbacks([]byte(body), ct, resolveHooks)
		var e *errCallbackRoute
		if !errors.As(err, &e) || !strings.Contains(err.Error(), "billing") {
			t.Errorf("%s: err = %v, want errCallbackRoute naming the route", ct, err)
		}
		if toResponse(err).status != 400 {
			t.Errorf("%s: status %d, want 400", ct, toResponse(err).status)
		}
	}
}

func TestSubstituteCallbacksJSON(t *testing.T) {
	in := `{"from":{"contact_uri":"+91999"},"status_callback":[{"event":"terminal","url":"exogate://calls"}],"max_time":3600,"note":"<a&b>"}`
	out, routes, err := substituteCallbacks([]byte(in), "application/json; charset=utf-8", resolveHooks)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"url":"https://hooks.example.com/hooks/calls/T0k3n"`, `"max_time":3600`, `"note":"<a&b>"`, `"contact_uri":"+91999"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("%s lacks %s", out, want)
		}
	}
	if len(routes) != 1 {
		t.Errorf("routes %v", routes)
	}
}

func TestSubstituteCallbacksMultipart(t *testing.T) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	_ = w.WriteField("From", "0999")
	_ = w.WriteField("StatusCallback", "exogate://calls")
	fw, _ := w.CreateFormFile("Attachment", "a.txt")
	_, _ = fw.Write([]byte("exogate://calls stays in a file"))
	_ = w.Close()
	out, routes, err := substituteCallbacks(buf.Bytes(), w.FormDataContentType(), resolveHooks)
	if err != nil || len(routes) != 1 {
		t.Fatal(err, routes)
	}
	r := multipart.NewReader(bytes.NewReader(out), w.Boundary())
	form, err := r.ReadForm(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if got := form.Value["StatusCallback"]; len(got) != 1 || got[0] != "https://hooks.example.com/hooks/calls/T0k3n" {
		t.Errorf("StatusCallback %v", got)
	}
	if got := form.Value["From"]; len(got) != 1 || got[0] != "0999" {
		t.Errorf("From %v", got)
	}
	f, _ := form.File["Attachment"][0].Open()
	var fb bytes.Buffer
	_, _ = fb.ReadFrom(f)
	if fb.String() != "exogate://calls stays in a file" {
		t.Errorf("file part changed: %q", fb.String())
	}
}

func FuzzSubstituteCallbacks(f *testing.F) {
	f.Add([]byte("StatusCallback=exogate%3A%2F%2Fcalls&To=1"), "application/x-www-form-urlencoded")
	f.Add([]byte(`{"a":["exogate://calls",{"b":"exogate://x"}]}`), "application/json")
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"S\"\r\n\r\nexogate://calls\r\n--b--\r\n"), "multipart/form-data; boundary=b")
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		out, routes, err := substituteCallbacks(body, ct, resolveHooks)
		if err != nil {
			var e *errCallbackRoute
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not a route refusal", err)
			}
			return
		}
		if routes == nil && !bytes.Equal(out, body) {
			t.Fatalf("nothing substituted but the body changed: %q → %q", body, out)
		}
		if bytes.Contains(out, []byte("exogate://calls")) && !bytes.Contains(body, []byte("exogate://calls")) {
			t.Fatalf("substitution made an exogate URL")
		}
	})
}
