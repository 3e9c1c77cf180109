package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/auth"
	"github.com/wrennhq/wrenn/internal/control"
	"github.com/wrennhq/wrenn/internal/fleet"
	"github.com/wrennhq/wrenn/internal/httpapi"
	"github.com/wrennhq/wrenn/internal/mock"
	"github.com/wrennhq/wrenn/internal/spectest"
	"github.com/wrennhq/wrenn/internal/store"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// testPasswordParams keep tests fast; production uses DefaultPasswordParams.
var testPasswordParams = auth.PasswordParams{Time: 1, Memory: 1024, Threads: 1}

type env struct {
	tb     testing.TB
	srv    *httptest.Server
	client *http.Client
	db     *store.DB
	auth   *auth.Service
	ctl    *control.Service
	hosts  *fleet.Service
}

type envOptions struct {
	agent      wrenn.Agent // nil: no host agent
	maxUpload  int64
	params     *auth.PasswordParams
	noValidate bool // for benchmarks: skip spec validation
	throttle   *auth.Throttle
	bodyGrace  time.Duration // 0: the default
	limits     control.Limits
	closed     bool // signup
	ptyPing    time.Duration
	logTo      io.Writer    // nil: logs are discarded; else every level is written here
	console    http.Handler // the web console (console_test.go)
}

func newEnv(tb testing.TB, engine string, o envOptions) *env {
	tb.Helper()
	db := storetest.MustOpen(tb, engine)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if o.logTo != nil {
		log = slog.New(slog.NewTextHandler(o.logTo, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	params := testPasswordParams
	if o.params != nil {
		params = *o.params
	}
	authSvc := auth.NewService(auth.Config{
		Accounts: db, Keys: db,
		Hasher:   auth.NewHasher(params, 4),
		Tokens:   auth.NewTokens([]byte(strings.Repeat("k", 32)), time.Now),
		Throttle: o.throttle,
		Now:      time.Now, Logger: log,
		SignupClosed: o.closed,
	})
	ctl := control.NewService(control.Config{Sandboxes: db, Templates: db, Quotas: db, Agent: o.agent, Now: time.Now, Logger: log,
		Limits: o.limits, Stats: db})
	hosts := fleet.New(fleet.Config{Hosts: db, Roles: db, Now: time.Now, Logger: log})
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Auth: authSvc, Control: ctl, Logger: log, MaxUploadBytes: o.maxUpload,
		BodyGrace: o.bodyGrace, PtyPingInterval: o.ptyPing, Hosts: hosts, Console: o.console}))
	tb.Cleanup(srv.Close)
	client := srv.Client()
	if !o.noValidate {
		client.Transport = spectest.Transport(tb, client.Transport)
	}
	if err := db.PutTemplate(context.Background(), &wrenn.Template{
		Name: "minimal", Type: wrenn.TemplateBase, SizeBytes: 1 << 20, CreatedAt: time.Now().UTC(),
	}); err != nil {
		tb.Fatal(err)
	}
	return &env{tb: tb, srv: srv, client: client, db: db, auth: authSvc, ctl: ctl, hosts: hosts}
}

type hdr map[string]string

// do sends body (nil, a string sent as is, or a value sent as JSON) and
// returns the status and response body.
func (e *env) do(method, path string, h hdr, body any) (int, []byte) {
	e.tb.Helper()
	status, out, err := e.send(method, path, h, body)
	if err != nil {
		e.tb.Fatalf("%s %s: %v", method, path, err)
	}
	return status, out
}

// send is do without a test to fail, for fuzz targets.
func (e *env) send(method, path string, h hdr, body any) (int, []byte, error) {
	status, out, _, err := e.exchange(method, path, h, body)
	return status, out, err
}

// sendHeader is do that also returns the response's header.
func (e *env) sendHeader(method, path string, h hdr, body any) (int, []byte, http.Header) {
	e.tb.Helper()
	status, out, header, err := e.exchange(method, path, h, body)
	if err != nil {
		e.tb.Fatalf("%s %s: %v", method, path, err)
	}
	return status, out, header
}

// exchange sends a request and returns the whole answer.
func (e *env) exchange(method, path string, h hdr, body any) (int, []byte, http.Header, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return 0, nil, nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, resp.Header, err
}

// must sends like do and fails the test unless the status is want; it
// decodes a JSON answer into v when v is not nil.
func (e *env) must(want int, method, path string, h hdr, body, v any) {
	e.tb.Helper()
	got, out := e.do(method, path, h, body)
	if got != want {
		e.tb.Fatalf("%s %s = %d, want %d; body %s", method, path, got, want, out)
	}
	if v != nil {
		if err := json.Unmarshal(out, v); err != nil {
			e.tb.Fatalf("%s %s: decode %s: %v", method, path, out, err)
		}
	}
}

type authResp struct {
	Token  string `json:"token"`
	UserID string `json:"user_id"`
	TeamID string `json:"team_id"`
	Email  string `json:"email"`
}

func (e *env) signup(email string) authResp {
	e.tb.Helper()
	var a authResp
	e.must(201, "POST", "/v1/auth/signup", nil, map[string]string{"email": email, "password": "correct horse"}, &a)
	return a
}

func bearer(token string) hdr { return hdr{"Authorization": "Bearer " + token} }
func apiKey(key string) hdr   { return hdr{"X-API-Key": key} }

type keyResp struct {
	ID        string     `json:"id"`
	TeamID    string     `json:"team_id"`
	Name      string     `json:"name"`
	KeyPrefix string     `json:"key_prefix"`
	CreatedAt time.Time  `json:"created_at"`
	LastUsed  *time.Time `json:"last_used"`
	Key       *string    `json:"key"`
}

func (e *env) newKey(token string) string {
	e.tb.Helper()
	var k keyResp
	e.must(201, "POST", "/v1/api-keys", bearer(token), map[string]string{"name": "test"}, &k)
	return *k.Key
}

// errCode returns the code of an error envelope.
func errCode(tb testing.TB, body []byte) string {
	tb.Helper()
	var env struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		tb.Fatalf("not an error envelope: %s", body)
	}
	return env.Error.Code
}

type sandboxResp struct {
	ID           string     `json:"id"`
	Status       string     `json:"status"`
	Template     string     `json:"template"`
	VCPUs        int        `json:"vcpus"`
	MemoryMB     int        `json:"memory_mb"`
	TimeoutSec   int        `json:"timeout_sec"`
	GuestIP      string     `json:"guest_ip"`
	HostIP       string     `json:"host_ip"`
	CreatedAt    time.Time  `json:"created_at"`
	StartedAt    *time.Time `json:"started_at"`
	LastActiveAt *time.Time `json:"last_active_at"`
}

// fakeHost is a mock agent that keeps running sandboxes in a map, for
// tests of the control plane's logic (never for end-to-end tests).
func fakeHost() *mock.Agent {
	return &mock.Agent{
		CreateSandboxFn: func(context.Context, wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
			return wrenn.SandboxNet{GuestIP: "169.254.0.21", HostIP: "169.254.0.22"}, nil
		},
		DestroySandboxFn: func(context.Context, string) error { return nil },
		ExecFn: func(_ context.Context, _ string, req wrenn.ExecRequest) (*wrenn.ExecResult, error) {
			return &wrenn.ExecResult{Stdout: []byte(strings.Join(req.Args, " ")), ExitCode: 0}, nil
		},
		PauseSandboxFn: func(context.Context, string) error { return nil },
		ResumeSandboxFn: func(context.Context, wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
			return wrenn.SandboxNet{GuestIP: "169.254.0.21", HostIP: "169.254.0.22"}, nil
		},
		CreateSnapshotFn: func(_ context.Context, _ string, t *wrenn.Template) error {
			v, m := 1, 512
			t.VCPUs, t.MemoryMB, t.SizeBytes = &v, &m, 4096
			return nil
		},
		DeleteSnapshotFn: func(context.Context, string, string) error { return nil },
		WriteFileFn: func(_ context.Context, _, _ string, r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		},
		ReadFileFn: func(context.Context, string, string) (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader("contents")), nil
		},
	}
}
