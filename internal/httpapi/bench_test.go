package httpapi_test

import (
	"fmt"
	"testing"

	"github.com/wrennhq/wrenn/internal/auth"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// BenchmarkAuthenticatedRequest measures GET /v1/sandboxes/{id} over real
// HTTP with an X-API-Key: the key lookup on the hot path plus one
// team-scoped read, from parallel clients.
//
//	go test ./internal/httpapi -run '^$' -bench 'AuthenticatedRequest|Login' -count 5
func BenchmarkAuthenticatedRequest(b *testing.B) {
	for _, engine := range storetest.Engines(b) {
		b.Run(engine, func(b *testing.B) {
			e := newEnv(b, engine, envOptions{agent: fakeHost(), noValidate: true})
			key := e.newKey(e.signup("bench@example.com").Token)
			var sb sandboxResp
			e.must(201, "POST", "/v1/sandboxes", apiKey(key), map[string]any{}, &sb)
			path := "/v1/sandboxes/" + sb.ID
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				h := apiKey(key)
				for pb.Next() {
					status, out, err := e.send("GET", path, h, nil)
					if err != nil || status != 200 {
						panic(fmt.Sprintf("GET %s = %d %s %v", path, status, out, err))
					}
				}
			})
		})
	}
}

// BenchmarkLogin measures POST /v1/auth/login with the production
// argon2id parameters: what a login costs, hashing included.
func BenchmarkLogin(b *testing.B) {
	for _, engine := range storetest.Engines(b) {
		b.Run(engine, func(b *testing.B) {
			e := newEnv(b, engine, envOptions{params: &auth.DefaultPasswordParams, noValidate: true})
			e.signup("bench@example.com")
			body := map[string]string{"email": "bench@example.com", "password": "correct horse"}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				status, out, err := e.send("POST", "/v1/auth/login", nil, body)
				if err != nil || status != 200 {
					b.Fatalf("login = %d %s %v", status, out, err)
				}
			}
		})
	}
}
