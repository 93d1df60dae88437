package httpapi

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/wspush/wspush"
)

var offsets = regexp.MustCompile(`"offset":\d+`)

func TestIsPublish(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		want         bool
	}{
		{"POST", "/api/publish", true},
		{"POST", "/api/broadcast", true},
		{"POST", "/api/publish/news", true},
		{"POST", "/api/publish/room:1", true},
		{"GET", "/api/publish", false},
		{"PUT", "/api/publish/news", false},
		{"POST", "/api/publish/", false},
		{"POST", "/api/publish/a/b", false},
		{"POST", "/api/publish/..", false},
		{"POST", "/api/publish/.", false},
		{"POST", "/api/publishx", false},
		{"POST", "/api/history/news", false},
		{"POST", "/", false},
	} {
		if got := IsPublish(tc.method, tc.path); got != tc.want {
			t.Errorf("IsPublish(%s, %s) = %v, want %v", tc.method, tc.path, got, tc.want)
		}
	}
}

// TestPublishHandlerAnswersAsTheRouter checks that the handler of the
// direct publish path answers every publish request as the full router
// does: the same status, body and authentication challenge.
func TestPublishHandlerAnswersAsTheRouter(t *testing.T) {
	cfg := Config{APIKey: "k", MaxPublishSize: 64, Namespaces: wspush.NewNamespaces(wspush.ChannelOptions{}, []wspush.NamespaceOptions{{Name: "hist", ChannelOptions: wspush.ChannelOptions{HistorySize: 10}}})}
	router, h := newRouter(t, cfg)
	direct := NewPublishHandler(cfg, h)
	key := "Bearer k"
	for _, tc := range []struct {
		path, contentType, auth, body string
	}{
		{"/api/publish", "application/json", key, `{"channel":"news","data":1}`},
		{"/api/publish", "application/json", key, `{"channel":"hist:a","data":1}`},
		{"/api/publish", "application/json", key, `{"channels":["news","hist:b"],"data":[1]}`},
		{"/api/publish", "application/json", key, `{"channel":"bad name","data":1}`},
		{"/api/publish", "application/json", key, `{"channel":"nope:x","data":1}`},
		{"/api/publish", "application/json", key, `{"channel":`},
		{"/api/publish", "application/json", key, `{"channel":"news","data":"` + strings.Repeat("x", 100) + `"}`},
		{"/api/publish", "text/plain", key, `{"channel":"news","data":1}`},
		{"/api/publish", "application/json", "", `{"channel":"news","data":1}`},
		{"/api/publish", "application/json", "Bearer nope", `{"channel":"news","data":1}`},
		{"/api/publish", "application/json", "bearer k", `{"channel":"news","data":1}`},
		{"/api/publish", "application/json", "Basic k", `{"channel":"news","data":1}`},
		{"/api/publish/news", "text/plain", key, "hello"},
		{"/api/publish/news", "application/json", key, `{"a":`},
		{"/api/publish/bad$$name!", "text/plain", key, "x"},
		{"/api/broadcast", "application/json", key, `{"data":"all"}`},
		{"/api/broadcast", "application/json", key, `{"text":"all"}`},
	} {
		answer := func(hd http.Handler) *httptest.ResponseRecorder {
			r := httptest.NewRequest("POST", tc.path, strings.NewReader(tc.body))
			r.Header.Set("Content-Type", tc.contentType)
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			hd.ServeHTTP(w, r)
			return w
		}
		want, got := answer(router), answer(direct)
		// The second publish to a channel with history gets the next offset.
		wantBody := offsets.ReplaceAllString(want.Body.String(), `"offset":N`)
		gotBody := offsets.ReplaceAllString(got.Body.String(), `"offset":N`)
		if got.Code != want.Code || gotBody != wantBody || got.Header().Get("WWW-Authenticate") != want.Header().Get("WWW-Authenticate") {
			t.Errorf("POST %s %q: direct %d %q, router %d %q", tc.path, tc.body, got.Code, got.Body, want.Code, want.Body)
		}
	}
}

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		auth, token string
		ok          bool
	}{
		{"Bearer k", "k", true},
		{"bearer k", "k", true},
		{"BEARER  k ", "k", true},
		{"Bearer", "", false},
		{"Bearerk", "", false},
		{"Basic k", "", false},
		{"", "", false},
	} {
		if token, ok := bearerToken(tc.auth); token != tc.token || ok != tc.ok {
			t.Errorf("bearerToken(%q) = %q, %v; want %q, %v", tc.auth, token, ok, tc.token, tc.ok)
		}
	}
}
