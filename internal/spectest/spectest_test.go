package spectest_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/spectest"
)

// recorder is a testing.TB that keeps what was reported.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// TestTransportCatchesDrift shows the checker can fail: a server that
// breaks the contract in each of these ways is reported.
func TestTransportCatchesDrift(t *testing.T) {
	for _, tc := range []struct {
		name, method, path, body, status, respBody string
		ok                                         bool
	}{
		{"good sandbox", "GET", "/v1/sandboxes/sb-1", "", "200", `{"id":"sb-1","status":"running","vcpus":1}`, true},
		{"good error", "GET", "/v1/sandboxes/sb-1", "", "404", `{"error":{"code":"not_found","message":"sandbox not found"}}`, true},
		{"wrong field type", "GET", "/v1/sandboxes/sb-1", "", "200", `{"id":"sb-1","vcpus":"one"}`, false},
		{"status outside enum", "GET", "/v1/sandboxes/sb-1", "", "200", `{"id":"sb-1","status":"sleeping"}`, false},
		{"error without envelope", "GET", "/v1/sandboxes/sb-1", "", "404", `not found`, false},
		{"envelope without message", "POST", "/v1/auth/login", `{}`, "401", `{"error":{"code":"unauthorized"}}`, false},
		{"undeclared route accepted", "GET", "/v1/teams", "", "200", `[]`, false},
		{"undeclared route refused", "GET", "/v1/teams", "", "404", `{"error":{"code":"not_found","message":"no route"}}`, true},
		{"bad request accepted", "POST", "/v1/auth/signup", `{"email":"a@b.c","password":"short"}`, "201", `{"token":"t"}`, false},
		{"null where nullable", "GET", "/v1/api-keys", "", "200", `[{"id":"k","last_used":null,"key":null}]`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				var code int
				fmt.Sscan(tc.status, &code)
				w.WriteHeader(code)
				fmt.Fprint(w, tc.respBody)
			}))
			defer srv.Close()
			rec := &recorder{TB: t}
			client := &http.Client{Transport: spectest.Transport(rec, nil)}
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if tc.body == "" {
				req.Body = http.NoBody
			} else {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if tc.ok && len(rec.errors) > 0 {
				t.Errorf("a good exchange was reported: %v", rec.errors)
			}
			if !tc.ok && len(rec.errors) == 0 {
				t.Errorf("a contract breach went unreported")
			}
		})
	}
}

// TestTransportStreamsUnknownLength shows a body of unknown length (a pipe,
// as a streamed upload sends) goes out as it is written: the server sees
// its first bytes while the writer still holds the rest back.
func TestTransportStreamsUnknownLength(t *testing.T) {
	got := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, buf); err == nil {
			close(got)
		}
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		fmt.Fprint(w, `{"error":{"code":"invalid","message":"no"}}`)
	}))
	defer srv.Close()
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("first"))
		select {
		case <-got:
			pw.Close()
		case <-time.After(5 * time.Second):
			pw.CloseWithError(errors.New("the transport held the stream back"))
		}
	}()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/sandboxes/sb-1/files/stream/write", pr)
	resp, err := (&http.Client{Transport: spectest.Transport(t, nil)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
