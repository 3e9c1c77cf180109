package httpapi_test

import (
	"strings"
	"testing"

	"github.com/wrennhq/wrenn/internal/store/storetest"
)

func TestRoutingErrors(t *testing.T) {
	e := newEnv(t, storetest.Engines(t)[0], envOptions{agent: fakeHost()})
	tok := e.signup("r@example.com").Token
	key := e.newKey(tok)
	for _, tc := range []struct {
		name, method, path string
		h                  hdr
		body               any
		status             int
		code               string
	}{
		{"unknown route", "GET", "/v1/nope", nil, nil, 404, "not_found"},
		{"unknown root", "GET", "/", nil, nil, 404, "not_found"},
		{"wrong method", "PUT", "/v1/sandboxes", apiKey(key), nil, 405, "method_not_allowed"},
		{"wrong method on item", "PATCH", "/v1/sandboxes/sb-x", apiKey(key), nil, 405, "method_not_allowed"},
		{"wrong method on signup", "GET", "/v1/auth/signup", nil, nil, 405, "method_not_allowed"},
		{"malformed JSON", "POST", "/v1/auth/signup", nil, `{"email":`, 400, "invalid_request"},
		{"not an object", "POST", "/v1/auth/signup", nil, `[1,2]`, 400, "invalid_request"},
		{"wrong type", "POST", "/v1/sandboxes", apiKey(key), `{"vcpus":"two"}`, 400, "invalid_request"},
		{"trailing data", "POST", "/v1/auth/login", nil, `{} {}`, 400, "invalid_request"},
		{"empty required body", "POST", "/v1/auth/signup", nil, ``, 400, "invalid_request"},
		{"oversized JSON", "POST", "/v1/auth/signup", nil, `{"email":"` + strings.Repeat("a", 2<<20) + `"}`, 413, "payload_too_large"},
		{"wrong content type", "POST", "/v1/auth/login", hdr{"Content-Type": "text/plain"}, `{}`, 415, "unsupported_media_type"},
		{"unknown fields ignored", "POST", "/v1/auth/login", nil, `{"email":"r@example.com","password":"correct horse","extra":[1]}`, 200, ""},
		{"bad snapshot type", "GET", "/v1/snapshots?type=other", apiKey(key), nil, 400, "invalid_request"},
		{"bad overwrite", "POST", "/v1/snapshots?overwrite=yes", apiKey(key), `{"sandbox_id":"sb-x"}`, 400, "invalid_request"},
		{"upload not multipart", "POST", "/v1/sandboxes/sb-x/files/write", apiKey(key), `{}`, 415, "unsupported_media_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, body := e.do(tc.method, tc.path, tc.h, tc.body)
			if got != tc.status {
				t.Fatalf("status %d, want %d: %s", got, tc.status, body)
			}
			if tc.code != "" && errCode(t, body) != tc.code {
				t.Fatalf("code %q, want %q", errCode(t, body), tc.code)
			}
		})
	}
}

func TestSpecServed(t *testing.T) {
	// The contract does not describe itself, so this one goes unvalidated.
	e := newEnv(t, storetest.Engines(t)[0], envOptions{noValidate: true})
	got, body := e.do("GET", "/openapi.yaml", nil, nil)
	if got != 200 || !strings.Contains(string(body), "title: Wrenn Sandbox API") {
		t.Fatalf("GET /openapi.yaml = %d %.100s", got, body)
	}
}
