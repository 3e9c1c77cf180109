package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wrennhq/wrenn/internal/store/storetest"
)

type session struct {
	Token  string `json:"token"`
	UserID string `json:"user_id"`
	TeamID string `json:"team_id"`
	Email  string `json:"email"`
}

type apiKey struct {
	ID        string  `json:"id"`
	TeamID    string  `json:"team_id"`
	Name      string  `json:"name"`
	KeyPrefix string  `json:"key_prefix"`
	LastUsed  *string `json:"last_used"`
	Key       *string `json:"key"`
}

// TestAccountsAgainstServer drives a freshly started `wrenn server` through
// signup, login, API keys and auth failures, on each store engine, then
// restarts it to show that accounts and logins survive.
func TestAccountsAgainstServer(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			dataDir := t.TempDir()
			env := []string{"WRENN_AGENT_ADDR=none"} // accounts need no VMs
			if engine == "postgres" {
				env = append(env, "DATABASE_URL="+storetest.MustCreateDatabase(t))
			}
			s := startServer(t, dataDir, env...)

			var a session
			s.must(201, "POST", "/v1/auth/signup", nil, map[string]string{"email": "grace@example.com", "password": "hopper1906"}, &a)
			if got, body := s.do("POST", "/v1/auth/signup", nil, map[string]string{"email": "GRACE@example.com", "password": "whatever99"}); got != 409 || errorCode(t, body) != "conflict" {
				t.Errorf("duplicate signup = %d %s", got, body)
			}
			if got, _ := s.do("POST", "/v1/auth/signup", nil, map[string]string{"email": "x@example.com", "password": "short"}); got != 400 {
				t.Errorf("short password = %d", got)
			}

			var l session
			s.must(200, "POST", "/v1/auth/login", nil, map[string]string{"email": "grace@example.com", "password": "hopper1906"}, &l)
			if l.UserID != a.UserID || l.TeamID != a.TeamID {
				t.Errorf("login %+v vs signup %+v", l, a)
			}
			_, wrong := s.do("POST", "/v1/auth/login", nil, map[string]string{"email": "grace@example.com", "password": "hopper1907"})
			_, unknown := s.do("POST", "/v1/auth/login", nil, map[string]string{"email": "ghost@example.com", "password": "hopper1906"})
			if errorCode(t, wrong) != "unauthorized" || string(wrong) != string(unknown) {
				t.Errorf("wrong password %s, unknown email %s: want the same 401", wrong, unknown)
			}

			var k apiKey
			s.must(201, "POST", "/v1/api-keys", bearer(l.Token), map[string]string{"name": "laptop"}, &k)
			if k.Key == nil || !strings.HasPrefix(*k.Key, "wrn_") || k.TeamID != a.TeamID {
				t.Fatalf("created key %+v", k)
			}
			s.must(200, "GET", "/v1/sandboxes", hdr{"X-API-Key": *k.Key}, nil, nil)
			s.must(200, "GET", "/v1/sandboxes", bearer(a.Token), nil, nil) // a login acts for its team too
			var keys []apiKey
			s.must(200, "GET", "/v1/api-keys", bearer(a.Token), nil, &keys)
			if len(keys) != 1 || keys[0].Key != nil || keys[0].LastUsed == nil || keys[0].ID != k.ID {
				t.Errorf("listed keys %+v", keys)
			}
			for _, tc := range []struct {
				method, path string
				h            hdr
			}{
				{"GET", "/v1/api-keys", nil},
				{"GET", "/v1/api-keys", bearer("not.a.jwt")},
				{"GET", "/v1/api-keys", hdr{"X-API-Key": *k.Key}},
				{"GET", "/v1/sandboxes", nil},
				{"GET", "/v1/sandboxes", bearer("not.a.jwt")},
				{"GET", "/v1/sandboxes", hdr{"X-API-Key": "wrn_nope"}},
				{"GET", "/v1/snapshots", hdr{"X-API-Key": strings.Replace(*k.Key, "wrn_", "wrn_0", 1)[:len(*k.Key)]}},
			} {
				if got, body := s.do(tc.method, tc.path, tc.h, nil); got != 401 || errorCode(t, body) != "unauthorized" {
					t.Errorf("%s %s with %v = %d %s, want 401", tc.method, tc.path, tc.h, got, body)
				}
			}

			// A restart keeps accounts, keys and logins (the JWT secret is
			// generated once and kept in the data dir).
			if engine == "sqlite" {
				if _, err := os.Stat(filepath.Join(dataDir, "wrenn.db")); err != nil {
					t.Errorf("no SQLite file in the data dir: %v", err)
				}
			}
			if fi, err := os.Stat(filepath.Join(dataDir, "jwt-secret")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("jwt secret file: %v %v", fi, err)
			}
			s.stop()
			firstLogs := s.logs.String()
			s = startServer(t, dataDir, env...)
			s.must(200, "GET", "/v1/api-keys", bearer(a.Token), nil, &keys)
			s.must(200, "GET", "/v1/sandboxes", hdr{"X-API-Key": *k.Key}, nil, nil)
			s.must(204, "DELETE", "/v1/api-keys/"+k.ID, bearer(a.Token), nil, nil)
			if got, _ := s.do("GET", "/v1/sandboxes", hdr{"X-API-Key": *k.Key}, nil); got != 401 {
				t.Errorf("deleted key = %d, want 401", got)
			}
			if got, _ := s.do("DELETE", "/v1/api-keys/"+k.ID, bearer(a.Token), nil); got != 404 {
				t.Errorf("delete twice = %d, want 404", got)
			}
			// Secrets never reach the log.
			s.stop()
			if containsAny(firstLogs+s.logs.String(), *k.Key, "hopper1906", a.Token) {
				t.Errorf("a secret reached the server log:\n%s", s.logs)
			}
		})
	}
}

// TestDotEnv shows that ./.env configures the server: a JWT secret given
// there is used instead of generating one into the data dir.
func TestDotEnv(t *testing.T) {
	dataDir := t.TempDir()
	s := startServerIn(t, t.TempDir(), dataDir, "WRENN_JWT_SECRET="+strings.Repeat("e", 40), "WRENN_AGENT_ADDR=none")
	s.must(201, "POST", "/v1/auth/signup", nil, map[string]string{"email": "env@example.com", "password": "12345678"}, nil)
	if _, err := os.Stat(filepath.Join(dataDir, "jwt-secret")); !os.IsNotExist(err) {
		t.Errorf("a secret was generated although .env gave one: %v", err)
	}
}
