package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// TestConsoleRoutes: with a console, GET and HEAD outside /v1 are its
// pages; the API's paths and errors stay as they were.
func TestConsoleRoutes(t *testing.T) {
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("X-Console", "yes")
		_, _ = w.Write([]byte("<html>console " + r.URL.Path + "</html>"))
	})
	// The console's answers are not the contract's: no validation.
	e := newEnv(t, storetest.Engines(t)[0], envOptions{console: console, noValidate: true})
	noRedirect := *e.client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	e.client = &noRedirect
	for _, tc := range []struct {
		method, path string
		status       int
		console      bool
		want         string // in the body, or the Location of a redirect
	}{
		{"GET", "/", 200, true, "console /"},
		{"HEAD", "/", 200, true, ""},
		{"GET", "/sandboxes/sb-1", 200, true, "console /sandboxes/sb-1"},
		{"GET", "/assets/index-abc.js", 200, true, "console /assets/index-abc.js"},
		{"GET", "/docs", 200, true, "console /docs"},
		{"GET", "/test", 302, false, "/"},
		{"GET", "/openapi.yaml", 200, false, "title: Wrenn Sandbox API"},
		{"GET", "/v1/nope", 404, false, `"code":"not_found"`},
		{"GET", "/v1", 404, false, `"code":"not_found"`},
		{"POST", "/", 404, false, `"code":"not_found"`},
		{"DELETE", "/sandboxes", 404, false, `"code":"not_found"`},
		{"GET", "/v1/sandboxes", 401, false, `"code":"unauthorized"`},
		{"PUT", "/v1/sandboxes", 405, false, `"code":"method_not_allowed"`},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			status, body, h := e.sendHeader(tc.method, tc.path, nil, nil)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if got := h.Get("X-Console") == "yes"; got != tc.console {
				t.Fatalf("served by the console: %v, want %v", got, tc.console)
			}
			if status == 302 {
				if h.Get("Location") != tc.want {
					t.Fatalf("Location %q, want %q", h.Get("Location"), tc.want)
				}
				return
			}
			if !strings.Contains(string(body), tc.want) {
				t.Fatalf("body %q, want it to hold %q", body, tc.want)
			}
		})
	}
}
