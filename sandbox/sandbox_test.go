package sandbox

import (
	"bytes"
	"encoding/xml"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var sidPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestConnectShapes(t *testing.T) {
	h := newHarness(t, Config{Seed: 1})
	for _, path := range []string{
		"/v1/Accounts/acme/Calls/connect.json",
		"/v1/accounts/acme/calls/connect.json",
		"/v1/Accounts/acme//Calls/connect.json",
		"/v1/Accounts/ACME/Calls/Connect.JSON",
	} {
		t.Run("json "+path, func(t *testing.T) {
			r := h.do(t, http.MethodPost, path, connectForm("09000000001"))
			if r.status != http.StatusOK || r.contentType != "application/json" {
				t.Fatalf("got %d %s: %s", r.status, r.contentType, r.body)
			}
			c := obj(t, decode(t, r), "Call").(map[string]any)
			want := map[string]any{
				"AccountSid": "acme", "To": "09000000001", "From": "09876543210",
				"PhoneNumberSid": "08047112233", "Status": "in-progress", "Direction": "outbound-api",
				"EndTime": nil, "Duration": nil, "Price": nil, "ParentCallSid": nil, "RecordingUrl": nil,
			}
			for k, v := range want {
				if got, ok := c[k]; !ok || got != v {
					t.Errorf("%s = %v, want %v", k, got, v)
				}
			}
			sid, _ := c["Sid"].(string)
			if !sidPattern.MatchString(sid) {
				t.Errorf("Sid %q is not 32 hex digits", sid)
			}
			if c["Uri"] != "/v1/Accounts/acme/Calls/"+sid+".json" {
				t.Errorf("Uri = %v", c["Uri"])
			}
			for _, k := range []string{"DateCreated", "DateUpdated", "StartTime", "AnsweredBy", "ForwardedFrom", "CallerName"} {
				if _, ok := c[k]; !ok {
					t.Errorf("no %s", k)
				}
			}
		})
	}
	t.Run("xml", func(t *testing.T) {
		r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect", connectForm("09000000001"))
		if r.status != http.StatusOK || r.contentType != "application/xml" || !strings.HasPrefix(r.body, "<?xml") {
			t.Fatalf("got %d %s: %s", r.status, r.contentType, r.body)
		}
		var doc struct {
			XMLName xml.Name `xml:"TwilioResponse"`
			Call    struct{ Sid, Status, To, Direction, AccountSid string }
		}
		if err := xml.Unmarshal([]byte(r.body), &doc); err != nil {
			t.Fatal(err)
		}
		if !sidPattern.MatchString(doc.Call.Sid) || doc.Call.Status != "in-progress" || doc.Call.To != "09000000001" ||
			doc.Call.Direction != "outbound-api" || doc.Call.AccountSid != "acme" {
			t.Errorf("Call = %+v", doc.Call)
		}
	})
	t.Run("multipart", func(t *testing.T) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for k, v := range connectForm("09000000002") {
			_ = mw.WriteField(k, v[0])
		}
		_ = mw.Close()
		req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/v1/Accounts/acme/Calls/connect.json", &b)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.SetBasicAuth(acme.Key, acme.Token)
		r := h.send(t, req)
		if r.status != http.StatusOK || obj(t, decode(t, r), "Call", "To") != "09000000002" {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
	})
	t.Run("query string", func(t *testing.T) {
		r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json?"+connectForm("09000000003").Encode(), nil)
		if r.status != http.StatusOK || obj(t, decode(t, r), "Call", "To") != "09000000003" {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
	})
}

func TestConnectValidation(t *testing.T) {
	h := newHarness(t, Config{})
	for _, missing := range []string{"From", "To", "CallerId"} {
		form := connectForm("09000000001")
		form.Del(missing)
		t.Run(missing+" json", func(t *testing.T) {
			r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", form)
			if r.status != http.StatusBadRequest {
				t.Fatalf("got %d: %s", r.status, r.body)
			}
			m := decode(t, r)
			if obj(t, m, "RestException", "Status") != float64(400) || !strings.Contains(obj(t, m, "RestException", "Message").(string), missing) {
				t.Errorf("body %s", r.body)
			}
		})
		t.Run(missing+" xml", func(t *testing.T) {
			r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect", form)
			if r.status != http.StatusBadRequest || !strings.Contains(r.body, "<RestException><Status>400</Status><Message>") ||
				!strings.Contains(r.body, missing) {
				t.Fatalf("got %d: %s", r.status, r.body)
			}
		})
	}
	if got := h.sim.Count(); got != 6 {
		t.Errorf("Count = %d, want 6", got)
	}
}

func TestAuth(t *testing.T) {
	h := newHarness(t, Config{})
	send := func(path string, a Account) reply {
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+path, nil)
		req.SetBasicAuth(a.Key, a.Token)
		return h.send(t, req)
	}
	wrong := Account{SID: "acme", Key: acme.Key, Token: "nope"}
	tests := []struct {
		name, path string
		a          Account
		status     int
		want       string
	}{
		{"json", "/v1/Accounts/acme/Calls.json", wrong, 401, `{"RestException":{"Status":401,"Message":`},
		{"xml", "/v1/Accounts/acme/Calls", wrong, 401, `<RestException><Status>401</Status>`},
		{"v2", "/v2/accounts/acme/calls", wrong, 401, `"http_code":401,"response":{"code":401,"error_data":{"code":1010,`},
		{"v3", "/v3/accounts/acme/calls", wrong, 401, `"error_data":{"code":1010,`},
		{"another account's pair", "/v1/Accounts/acme/Calls.json", bolt, 401, `"Status":401`},
		{"unknown account", "/v1/Accounts/zed/Calls.json", acme, 401, `"Status":401`},
		{"right", "/v1/Accounts/acme/Calls.json", acme, 200, `"Metadata"`},
		{"right, other account", "/v1/Accounts/bolt1m/Calls.json", bolt, 200, `"Metadata"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(tt.path, tt.a)
			if r.status != tt.status || !strings.Contains(r.body, tt.want) {
				t.Errorf("got %d %s, want %d with %s", r.status, r.body, tt.status, tt.want)
			}
		})
	}
	t.Run("no credentials", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/v1/Accounts/acme/Calls.json", nil)
		if r := h.send(t, req); r.status != 401 {
			t.Errorf("got %d", r.status)
		}
	})
	t.Run("AllowAlso and SetAccount", func(t *testing.T) {
		second := Account{SID: "acme", Key: "k2", Token: "t2"}
		if r := send("/v1/Accounts/acme/Calls.json", second); r.status != 401 {
			t.Fatalf("before AllowAlso: %d", r.status)
		}
		h.sim.AllowAlso(second)
		if r := send("/v1/Accounts/acme/Calls.json", second); r.status != 200 {
			t.Errorf("after AllowAlso: %d", r.status)
		}
		if r := send("/v1/Accounts/acme/Calls.json", acme); r.status != 200 {
			t.Errorf("first pair after AllowAlso: %d", r.status)
		}
		h.sim.SetAccount(second)
		if r := send("/v1/Accounts/acme/Calls.json", acme); r.status != 401 {
			t.Errorf("replaced pair after SetAccount: %d", r.status)
		}
	})
}

func TestPathErrors(t *testing.T) {
	h := newHarness(t, Config{})
	tests := []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/nowhere", 404},
		{http.MethodGet, "/v1/Accounts/acme/../bolt1m/Calls.json", 400},
		{"BREW", "/v1/Accounts/acme/Calls.json", 405},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, h.srv.URL, nil)
		req.URL.Opaque = tt.path
		req.SetBasicAuth(acme.Key, acme.Token)
		if r := h.send(t, req); r.status != tt.status {
			t.Errorf("%s %s: got %d, want %d: %s", tt.method, tt.path, r.status, tt.status, r.body)
		}
	}
}

func TestCallDetails(t *testing.T) {
	h := newHarness(t, Config{})
	sid := obj(t, decode(t, h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", connectForm("09000000001"))), "Call", "Sid").(string)
	t.Run("json", func(t *testing.T) {
		r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls/"+sid+".json", nil)
		if r.status != 200 || obj(t, decode(t, r), "Call", "Sid") != sid {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
	})
	t.Run("xml", func(t *testing.T) {
		r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls/"+sid, nil)
		if r.status != 200 || !strings.Contains(r.body, "<Call><Sid>"+sid+"</Sid>") {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls/0123456789abcdef0123456789abcdef.json", nil)
		if r.status != 404 || obj(t, decode(t, r), "RestException", "Status") != float64(404) {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
		r = h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls/0123456789abcdef0123456789abcdef", nil)
		if r.status != 404 || !strings.Contains(r.body, "<Status>404</Status>") {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
	})
	t.Run("another account's call", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/v1/Accounts/bolt1m/Calls/"+sid+".json", nil)
		req.SetBasicAuth(bolt.Key, bolt.Token)
		if r := h.send(t, req); r.status != 404 {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
	})
}

func TestCallsList(t *testing.T) {
	h := newHarness(t, Config{})
	var sids []string
	for _, to := range []string{"09000000001", "09000000002", "09000000001"} {
		r := h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", connectForm(to))
		sids = append(sids, obj(t, decode(t, r), "Call", "Sid").(string))
	}
	form := connectForm("09000000003")
	form.Set("From", "01111111111")
	sids = append(sids, obj(t, decode(t, h.do(t, http.MethodPost, "/v1/Accounts/acme/Calls/connect.json", form)), "Call", "Sid").(string))

	list := func(query string) (total float64, got []string, meta map[string]any) {
		t.Helper()
		r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json?"+query, nil)
		if r.status != 200 {
			t.Fatalf("%s: got %d: %s", query, r.status, r.body)
		}
		m := decode(t, r)
		meta = obj(t, m, "Metadata").(map[string]any)
		for _, c := range obj(t, m, "Calls").([]any) {
			got = append(got, c.(map[string]any)["Sid"].(string))
		}
		return meta["Total"].(float64), got, meta
	}
	tests := []struct {
		name, query string
		want        []string // newest first
	}{
		{"all", "", []string{sids[3], sids[2], sids[1], sids[0]}},
		{"To", url.Values{"To": {"09000000001"}}.Encode(), []string{sids[2], sids[0]}},
		{"From", url.Values{"From": {"01111111111"}}.Encode(), []string{sids[3]}},
		{"Sid", url.Values{"Sid": {sids[0] + "," + sids[3]}}.Encode(), []string{sids[3], sids[0]}},
		{"DateCreated in range", url.Values{"DateCreated": {"gte:2000-01-01 00:00:00;lte:2999-01-01 00:00:00"}}.Encode(), []string{sids[3], sids[2], sids[1], sids[0]}},
		{"DateCreated after", url.Values{"DateCreated": {"gte:2999-01-01 00:00:00"}}.Encode(), nil},
		{"DateCreated before", url.Values{"DateCreated": {"lte:2000-01-01 00:00:00"}}.Encode(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			total, got, _ := list(tt.query)
			if int(total) != len(tt.want) || strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v (total %v), want %v", got, total, tt.want)
			}
		})
	}
	t.Run("pages", func(t *testing.T) {
		total, got, meta := list("PageSize=3")
		if total != 4 || len(got) != 3 || meta["NextPageUri"] == nil || meta["PrevPageUri"] != nil || meta["PageSize"] != float64(3) {
			t.Fatalf("first page: %v %v", got, meta)
		}
		_, got, meta = list("PageSize=3&Page=1")
		if len(got) != 1 || got[0] != sids[0] || meta["NextPageUri"] != nil || meta["PrevPageUri"] == nil {
			t.Fatalf("second page: %v %v", got, meta)
		}
	})
	t.Run("xml", func(t *testing.T) {
		r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls", nil)
		if r.status != 200 || !strings.Contains(r.body, "<Metadata><Total>4</Total>") || strings.Count(r.body, "<Call>") != 4 {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
	})
	t.Run("other account sees none", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/v1/Accounts/bolt1m/Calls.json", nil)
		req.SetBasicAuth(bolt.Key, bolt.Token)
		if r := h.send(t, req); !strings.Contains(r.body, `"Total":0`) || !strings.Contains(r.body, `"Calls":[]`) {
			t.Fatalf("got %d: %s", r.status, r.body)
		}
	})
	many := make([]string, 101)
	for i := range many {
		many[i] = sids[0]
	}
	for _, q := range []string{
		url.Values{"Sid": {strings.Join(many, ",")}}.Encode(),
		url.Values{"DateCreated": {"after:2020-01-01"}}.Encode(),
		url.Values{"DateCreated": {"gte:yesterday"}}.Encode(),
		"PageSize=0", "PageSize=x", "Page=-1",
	} {
		if r := h.do(t, http.MethodGet, "/v1/Accounts/acme/Calls.json?"+q, nil); r.status != 400 || !strings.Contains(r.body, "RestException") {
			t.Errorf("%s: got %d: %s", q, r.status, r.body)
		}
	}
}
