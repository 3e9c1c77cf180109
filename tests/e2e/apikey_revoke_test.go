package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/auth"
	"github.com/wrennhq/wrenn/internal/store"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// TestAPIKeyRevoked: servers cache the API keys they have verified
// (issue 14, internal/auth/keycache.go). A key deleted on one server is
// refused there at once, in the API's words; on PostgreSQL, a second
// replica of the control plane that had the key cached refuses it once
// auth.DefaultKeyCacheTTL has passed since the delete returned. The
// team's other key keeps working on both. No VMs: the servers have no
// host agent, and the key's route is GET /v1/sandboxes.
func TestAPIKeyRevoked(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := []string{"WRENN_AGENT_ADDR=none"}
			if engine == store.EnginePostgres {
				env = append(env, "DATABASE_URL="+storetest.MustCreateDatabase(t),
					"WRENN_JWT_SECRET="+strings.Repeat("replicas-share-this-secret-", 2))
			}
			a := startServer(t, shortTempDir(t), env...)
			servers := []*server{a}
			if engine == store.EnginePostgres {
				servers = append(servers, startServer(t, shortTempDir(t), env...))
			}

			var sess session
			a.must(201, "POST", "/v1/auth/signup", nil, map[string]string{"email": "revoke@example.com", "password": "sandbox-tests"}, &sess)
			var doomed, kept apiKey
			a.must(201, "POST", "/v1/api-keys", bearer(sess.Token), map[string]string{"name": "doomed"}, &doomed)
			a.must(201, "POST", "/v1/api-keys", bearer(sess.Token), map[string]string{"name": "kept"}, &kept)
			doomedKey, keptKey := hdr{"X-API-Key": *doomed.Key}, hdr{"X-API-Key": *kept.Key}
			// Every server verifies both keys, and so caches them.
			for _, s := range servers {
				for range 3 {
					s.must(200, "GET", "/v1/sandboxes", doomedKey, nil, nil)
					s.must(200, "GET", "/v1/sandboxes", keptKey, nil, nil)
				}
			}

			a.must(204, "DELETE", "/v1/api-keys/"+doomed.ID, bearer(sess.Token), nil, nil)
			deleted := time.Now()
			refused := func(s *server) {
				t.Helper()
				code, body := s.do("GET", "/v1/sandboxes", doomedKey, nil)
				if code != 401 || errorCode(t, body) != "unauthorized" || !strings.Contains(string(body), `"invalid API key"`) {
					t.Errorf("the deleted key on %s: %d %s, want 401 invalid API key", s.url, code, body)
				}
			}
			refused(a) // at once, where it was deleted
			if len(servers) == 2 {
				// The other replica may vouch for it from its cache until
				// the TTL has passed, and not after.
				time.Sleep(time.Until(deleted.Add(auth.DefaultKeyCacheTTL + 50*time.Millisecond)))
				refused(servers[1])
			}
			for _, s := range servers {
				s.must(200, "GET", "/v1/sandboxes", keptKey, nil, nil)
			}
		})
	}
}
