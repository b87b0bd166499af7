package config_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/config"
)

func TestListHTTP(t *testing.T) {
	f := newFixture(t, config.NewMemStore(), nil)
	for _, name := range []string{"team-c", "team-a", "team-b"} {
		body := strings.Replace(budgetA, `"id":"team-a"`, `"id":"`+name+`"`, 1)
		if resp, b := f.do(t, "PUT", "/v1/config/budget/"+name, body, true); resp.StatusCode != 201 {
			t.Fatalf("PUT %s: %d %s", name, resp.StatusCode, b)
		}
	}
	f.do(t, "PUT", "/v1/config/budget/team-a", strings.Replace(budgetA, "12.5", "30", 1), true)

	var names []string
	cursor := ""
	for pages := 0; ; pages++ {
		path := "/v1/config?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		resp, body := f.do(t, "GET", path, "", true)
		var page config.ListResponse
		if err := json.Unmarshal(body, &page); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		for _, d := range page.Items {
			names = append(names, d.Name)
			if d.Kind != "budget" || d.Digest == "" || d.UpdatedAt.IsZero() || d.Name == "team-a" && d.LatestVersion != 2 {
				t.Fatalf("item %+v", d)
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if strings.Join(names, ",") != "team-a,team-b,team-c" {
		t.Fatalf("listed %v", names)
	}
	// The raw body has the contract's field names and no documents.
	_, body := f.do(t, "GET", "/v1/config", "", true)
	for _, k := range []string{`"kind"`, `"name"`, `"latest_version"`, `"digest"`, `"updated_at"`} {
		if !strings.Contains(string(body), k) {
			t.Fatalf("no %s in %s", k, body)
		}
	}
	if strings.Contains(string(body), `"document"`) || strings.Contains(string(body), "next_cursor") {
		t.Fatalf("list body %s", body)
	}
	for _, q := range []string{"?limit=0", "?limit=501", "?limit=x", "?cursor=***", "?cursor=" + contracts.EncodeBase64URL([]byte("no-newline")), "?cursor=" + contracts.EncodeBase64URL([]byte("Bad\nname")), "?x=1", "?limit=1&limit=2"} {
		resp, body := f.do(t, "GET", "/v1/config"+q, "", true)
		var eb errBody
		if json.Unmarshal(body, &eb); resp.StatusCode != 400 || eb.Code != string(contracts.CodeInvalidInput) {
			t.Fatalf("%s: %d %s", q, resp.StatusCode, body)
		}
	}
	if resp, _ := f.do(t, "GET", "/v1/config", "", false); resp.StatusCode != 401 {
		t.Fatalf("without the credential: %d", resp.StatusCode)
	}
}

func FuzzListCursor(f *testing.F) {
	f.Add(contracts.EncodeBase64URL([]byte("budget\nteam-a")))
	f.Add("")
	f.Add("%%")
	f.Fuzz(func(t *testing.T, c string) {
		fx := newFixture(t, config.NewMemStore(), nil)
		resp, _ := fx.do(t, "GET", "/v1/config?cursor="+url.QueryEscape(c), "", true)
		if resp.StatusCode != 200 && resp.StatusCode != 400 {
			t.Fatalf("%q: %d", c, resp.StatusCode)
		}
	})
}
