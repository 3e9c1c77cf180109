package httpapi_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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

// BenchmarkLoginUnderFlood measures a good login from one loopback
// address while 40 clients on another send wrong passwords as fast as
// they are answered, each guess at an account of its own, against the
// same login with no flood, in the same run: the throttle turns the
// flood away before hashing, and the hasher takes turns between
// addresses. It reports the p50 of each and their ratio.
func BenchmarkLoginUnderFlood(b *testing.B) {
	e := newEnv(b, "sqlite", envOptions{params: &auth.DefaultPasswordParams, noValidate: true})
	e.signup("bench@example.com")
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64}}
	}
	login := func(c *http.Client, email, password string) int {
		body := fmt.Sprintf(`{"email":%q,"password":%q}`, email, password)
		resp, err := c.Post(e.srv.URL+"/v1/auth/login", "application/json", strings.NewReader(body))
		if err != nil {
			b.Error(err)
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	user := from("127.0.0.3")
	sample := func(n int) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			start := time.Now()
			if got := login(user, "bench@example.com", "correct horse"); got != http.StatusOK {
				b.Fatalf("good login = %d", got)
			}
			out[i] = time.Since(start)
		}
		return out
	}
	median := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}
	n := max(b.N, 5)
	idle := median(sample(n))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	flood := from("127.0.0.2")
	for i := range 40 {
		wg.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				login(flood, fmt.Sprintf("guess-%d-%d@example.com", i, j), "wrong password")
			}
		})
	}
	time.Sleep(500 * time.Millisecond) // let the flood build up
	b.ResetTimer()
	flooded := median(sample(n))
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(idle.Microseconds())/1000, "idle-p50-ms")
	b.ReportMetric(float64(flooded.Microseconds())/1000, "flood-p50-ms")
	b.ReportMetric(float64(flooded)/float64(idle), "ratio")
}
