package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRun: the load generator reads whole answers of either framing
// (Content-Length and chunked), keeps its connections alive, sends the
// headers it is given, and counts answers of another status as
// unexpected, not as requests.
func TestRun(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != "wrn_test" {
			http.Error(w, "no key", http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/chunked" {
			for range 3 {
				_, _ = w.Write([]byte(strings.Repeat("x", 1000)))
				w.(http.Flusher).Flush() // no Content-Length: chunked
			}
			return
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	for _, path := range []string{"/length", "/chunked"} {
		t.Run(path, func(t *testing.T) {
			before := conns.Load()
			res, err := run(srv.URL+path, headers{"X-API-Key: wrn_test"}, 4, 50*time.Millisecond, 200*time.Millisecond, 200)
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests == 0 || res.Errors != 0 || res.Unexpected != 0 || res.P50Micros <= 0 || res.P99Micros < res.P50Micros {
				t.Fatalf("run = %+v", res)
			}
			if n := conns.Load() - before; n != 4 {
				t.Errorf("%d connections for %d requests on 4 kept alive", n, res.Requests)
			}
		})
	}

	t.Run("unexpected status", func(t *testing.T) {
		res, err := run(srv.URL+"/length", nil, 2, 20*time.Millisecond, 100*time.Millisecond, 200)
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 0 || res.Unexpected == 0 || res.FirstError != "status 401, want 200" {
			t.Fatalf("run without the key = %+v", res)
		}
	})
}
