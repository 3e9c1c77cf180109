package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/auth"
	"github.com/wrennhq/wrenn/internal/clocktest"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// Failed logins are throttled: past the free ones, a login from that
// address to that account is a 429 with Retry-After and the envelope,
// even with the right password, until the wait has passed.
func TestLoginThrottle(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			clock := clocktest.New(time.Unix(1e9, 0))
			e := newEnv(t, engine, envOptions{throttle: auth.NewThrottle(clock.Now)})
			good := map[string]string{"email": "t@example.com", "password": "right password"}
			bad := map[string]string{"email": "t@example.com", "password": "wrong password"}
			e.must(http.StatusCreated, "POST", "/v1/auth/signup", nil, good, nil)
			for i := range 6 {
				if got, body := e.do("POST", "/v1/auth/login", nil, bad); got != http.StatusUnauthorized {
					t.Fatalf("bad login %d = %d %s", i, got, body)
				}
			}
			status, body, header := e.sendHeader("POST", "/v1/auth/login", nil, good)
			if status != http.StatusTooManyRequests || header.Get("Retry-After") != "1" || !strings.Contains(string(body), `"rate_limited"`) {
				t.Fatalf("login past the limit = %d, Retry-After %q: %s", status, header.Get("Retry-After"), body)
			}
			clock.Advance(time.Second)
			e.must(http.StatusOK, "POST", "/v1/auth/login", nil, good, nil)
		})
	}
}
