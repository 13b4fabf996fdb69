package sandbox

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzServeHTTP sends arbitrary paths, content types and bodies with valid
// credentials: the simulator answers each (no panic) with a status, and an
// error in Exotel's shape when it refuses one.
func FuzzServeHTTP(f *testing.F) {
	f.Add("POST", "/v1/Accounts/acme/Calls/connect.json", "application/x-www-form-urlencoded", "From=1&To=2&CallerId=3&StatusCallbackEvents[]=answered")
	f.Add("POST", "/v1/Accounts/acme//Sms/bulksend", "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"To\"\r\n\r\n1\r\n--b--\r\n")
	f.Add("GET", "/v1/Accounts/acme/Calls.json?Sid=a,b&DateCreated=gte:2020-01-01;lte:x", "", "")
	f.Add("POST", "/v2/accounts/acme/calls", "application/json", `{"from":{"contact_uri":1}}`)
	f.Add("GET", "/v3/accounts/acme/calls/x/legs", "", "")
	f.Fuzz(func(t *testing.T, method, path, contentType, body string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#") || method == "" || strings.ContainsAny(method, " \r\n\t") {
			return
		}
		sim := New(Config{Accounts: []Account{acme}, Ring: 1 << 62})
		defer sim.Close()
		req, err := http.NewRequest(method, "http://exotel.test"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		req.RequestURI = path
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(acme.Key+":"+acme.Token)))
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)
		if rec.Code < 200 || rec.Code > 599 {
			t.Fatalf("status %d", rec.Code)
		}
		if rec.Code >= 400 && !strings.Contains(rec.Body.String(), "RestException") && !strings.Contains(rec.Body.String(), `"status":"failure"`) {
			t.Fatalf("%d not in Exotel's shape: %s", rec.Code, rec.Body.String())
		}
	})
}
