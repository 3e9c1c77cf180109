package httpapi_test

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

func TestAccounts(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			testAccounts(t, newEnv(t, engine, envOptions{}))
		})
	}
}

func testAccounts(t *testing.T, e *env) {
	a := e.signup("Ada@Example.com")
	if a.Token == "" || !strings.HasPrefix(a.UserID, "usr-") || !strings.HasPrefix(a.TeamID, "team-") || a.Email != "Ada@Example.com" {
		t.Fatalf("signup answer %+v", a)
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(a.Token, claims); err != nil {
		t.Fatal(err)
	}
	exp, _ := claims.GetExpirationTime()
	if d := time.Until(exp.Time); d < 5*time.Hour+59*time.Minute || d > 6*time.Hour {
		t.Errorf("token valid for %v, want 6h", d)
	}

	t.Run("signup refusals", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			body any
			want int
		}{
			{"email taken in another case", map[string]string{"email": "ada@EXAMPLE.com", "password": "12345678"}, 409},
			{"no email", map[string]string{"password": "12345678"}, 400},
			{"bad email", map[string]string{"email": "not-an-email", "password": "12345678"}, 400},
			{"email with name", map[string]string{"email": "Ada <a@b.c>", "password": "12345678"}, 400},
			{"short password", map[string]string{"email": "b@example.com", "password": "1234567"}, 400},
			{"no password", map[string]string{"email": "b@example.com"}, 400},
			{"huge password", map[string]string{"email": "b@example.com", "password": strings.Repeat("x", 2000)}, 400},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, body := e.do("POST", "/v1/auth/signup", nil, tc.body)
				if got != tc.want {
					t.Fatalf("status %d, want %d: %s", got, tc.want, body)
				}
			})
		}
	})

	t.Run("login", func(t *testing.T) {
		var l authResp
		e.must(200, "POST", "/v1/auth/login", nil, map[string]string{"email": "ADA@example.com", "password": "correct horse"}, &l)
		if l.UserID != a.UserID || l.TeamID != a.TeamID || l.Token == "" {
			t.Fatalf("login answer %+v, signup %+v", l, a)
		}
		_, wrong := e.do("POST", "/v1/auth/login", nil, map[string]string{"email": "ada@example.com", "password": "wrong horse"})
		_, unknown := e.do("POST", "/v1/auth/login", nil, map[string]string{"email": "nobody@example.com", "password": "correct horse"})
		if string(wrong) != string(unknown) {
			t.Errorf("wrong password and unknown email answer differently:\n%s\n%s", wrong, unknown)
		}
		for _, body := range []any{
			map[string]string{"email": "ada@example.com", "password": "wrong horse"},
			map[string]string{"email": "nobody@example.com", "password": "correct horse"},
			map[string]string{"email": "ada@example.com"},
			map[string]string{},
		} {
			if got, out := e.do("POST", "/v1/auth/login", nil, body); got != 401 || errCode(t, out) != "unauthorized" {
				t.Errorf("login %v = %d %s, want 401", body, got, out)
			}
		}
	})

	t.Run("api keys", func(t *testing.T) {
		var k keyResp
		e.must(201, "POST", "/v1/api-keys", bearer(a.Token), map[string]string{"name": "ci"}, &k)
		if k.Key == nil || !strings.HasPrefix(*k.Key, "wrn_") || len(*k.Key) < 4+64 {
			t.Fatalf("created key %+v", k)
		}
		if k.Name != "ci" || k.TeamID != a.TeamID || !strings.HasPrefix(*k.Key, strings.TrimSuffix(k.KeyPrefix, "...")) || k.LastUsed != nil {
			t.Errorf("created key %+v", k)
		}
		var unnamed keyResp
		e.must(201, "POST", "/v1/api-keys", bearer(a.Token), map[string]string{}, &unnamed)
		if unnamed.Name != "Unnamed API Key" {
			t.Errorf("default name %q", unnamed.Name)
		}

		// Using the key sets last_used.
		e.must(200, "GET", "/v1/sandboxes", apiKey(*k.Key), nil, nil)
		var list []keyResp
		e.must(200, "GET", "/v1/api-keys", bearer(a.Token), nil, &list)
		if len(list) != 2 {
			t.Fatalf("list has %d keys, want 2", len(list))
		}
		for _, l := range list {
			if l.Key != nil {
				t.Errorf("list shows a plaintext key: %+v", l)
			}
			if l.ID == k.ID && l.LastUsed == nil {
				t.Errorf("last_used not set after use")
			}
		}

		// Another team cannot see or delete it.
		b := e.signup("bob@example.com")
		var blist []keyResp
		e.must(200, "GET", "/v1/api-keys", bearer(b.Token), nil, &blist)
		if len(blist) != 0 {
			t.Errorf("team B sees %d keys of team A", len(blist))
		}
		if got, _ := e.do("DELETE", "/v1/api-keys/"+k.ID, bearer(b.Token), nil); got != 404 {
			t.Errorf("team B deletes team A's key: %d, want 404", got)
		}

		e.must(204, "DELETE", "/v1/api-keys/"+k.ID, bearer(a.Token), nil, nil)
		if got, _ := e.do("DELETE", "/v1/api-keys/"+k.ID, bearer(a.Token), nil); got != 404 {
			t.Errorf("second delete: %d, want 404", got)
		}
		if got, _ := e.do("GET", "/v1/sandboxes", apiKey(*k.Key), nil); got != 401 {
			t.Errorf("deleted key still works: %d", got)
		}
	})

	t.Run("auth failures", func(t *testing.T) {
		key := e.newKey(a.Token)
		expired := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": a.UserID, "team_id": a.TeamID, "iss": "wrenn", "exp": time.Now().Add(-time.Minute).Unix(),
		})
		expiredTok, _ := expired.SignedString([]byte(strings.Repeat("k", 32)))
		forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": a.UserID, "team_id": a.TeamID, "iss": "wrenn", "exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString([]byte(strings.Repeat("x", 32)))
		none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
			"sub": a.UserID, "team_id": a.TeamID, "iss": "wrenn", "exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString(jwt.UnsafeAllowNoneSignatureType)
		for _, tc := range []struct {
			name, method, path string
			h                  hdr
		}{
			{"keys without token", "GET", "/v1/api-keys", nil},
			{"keys with garbage token", "GET", "/v1/api-keys", bearer("garbage")},
			{"keys with expired token", "GET", "/v1/api-keys", bearer(expiredTok)},
			{"keys with forged token", "GET", "/v1/api-keys", bearer(forged)},
			{"keys with alg none", "GET", "/v1/api-keys", bearer(none)},
			{"keys with basic auth", "GET", "/v1/api-keys", hdr{"Authorization": "Basic YTpi"}},
			{"keys with an API key", "GET", "/v1/api-keys", apiKey(key)},
			{"sandboxes without key", "GET", "/v1/sandboxes", nil},
			// A login's JWT is good for sandboxes (TestBrowserCredentials);
			// bad ones are not.
			{"sandboxes with an expired token", "GET", "/v1/sandboxes", bearer(expiredTok)},
			{"sandboxes with a forged token", "GET", "/v1/sandboxes", bearer(forged)},
			{"sandboxes with alg none", "GET", "/v1/sandboxes", bearer(none)},
			{"sandboxes with a bad key", "GET", "/v1/sandboxes", apiKey("wrn_" + strings.Repeat("0", 64))},
			{"sandboxes with a short key", "GET", "/v1/sandboxes", apiKey("wrn_abc")},
			{"snapshots without key", "GET", "/v1/snapshots", nil},
			{"create sandbox without key", "POST", "/v1/sandboxes", nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, body := e.do(tc.method, tc.path, tc.h, nil)
				if got != 401 || errCode(t, body) != "unauthorized" {
					t.Fatalf("status %d %s, want 401 unauthorized", got, body)
				}
			})
		}
	})
}

// TestSignupClosed: with signup closed, POST signup is a 403 in the
// envelope and writes nothing; an account the operator creates logs in.
func TestSignupClosed(t *testing.T) {
	e := newEnv(t, "sqlite", envOptions{closed: true})
	code, body := e.do("POST", "/v1/auth/signup", nil, map[string]string{"email": "c@example.com", "password": "correct horse"})
	if code != 403 || errCode(t, body) != wrenn.EForbidden {
		t.Fatalf("signup = %d %s, want 403 %s", code, body, wrenn.EForbidden)
	}
	if _, err := e.db.UserByEmail(t.Context(), "c@example.com"); wrenn.ErrorCode(err) != wrenn.ENotFound {
		t.Fatalf("a refused signup made a user: %v", err)
	}
	if _, _, err := e.auth.CreateAccount(t.Context(), "c@example.com", "correct horse"); err != nil {
		t.Fatal(err)
	}
	var a authResp
	e.must(200, "POST", "/v1/auth/login", nil, map[string]string{"email": "c@example.com", "password": "correct horse"}, &a)
	if a.TeamID == "" {
		t.Fatalf("login = %+v", a)
	}
}
