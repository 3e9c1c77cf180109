package client_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/api"
	"github.com/wrennhq/wrenn/client"
	"github.com/wrennhq/wrenn/internal/auth"
	"github.com/wrennhq/wrenn/internal/control"
	"github.com/wrennhq/wrenn/internal/fleet"
	"github.com/wrennhq/wrenn/internal/httpapi"
	"github.com/wrennhq/wrenn/internal/mock"
	"github.com/wrennhq/wrenn/internal/spectest"
	"github.com/wrennhq/wrenn/internal/store"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// TestMain checks, after a full run, that the tests reached every
// operation of the contract through the client, and that no goroutine
// outlives them.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 && flag.Lookup("test.run").Value.String() == "" && flag.Lookup("test.skip").Value.String() == "" {
		for _, op := range regexp.MustCompile(`(?m)^\s+operationId:\s*(\S+)`).FindAllSubmatch(api.OpenAPI, -1) {
			if _, ok := covered.Load(string(op[1])); !ok {
				fmt.Fprintf(os.Stderr, "no test reached operation %s through the client\n", op[1])
				code = 1
			}
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// covered holds the operationId of every operation an exchange of the
// tests reached.
var covered sync.Map

// coverTransport notes the operation of each request it sends.
type coverTransport struct {
	tb   testing.TB
	base http.RoundTripper
}

func (t coverTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if route, _, err := spectest.Router(t.tb).FindRoute(req); err == nil {
		covered.Store(route.Operation.OperationID, true)
	}
	return t.base.RoundTrip(req)
}

// env is the real API server, over a real SQLite store and a fake host
// agent, served on a loopback port.
type env struct {
	tb  testing.TB
	srv *httptest.Server
	hc  *http.Client // checks every exchange against api/openapi.yaml
	db  *store.DB
}

func newEnv(tb testing.TB, agent wrenn.Agent) *env {
	tb.Helper()
	db := storetest.MustOpen(tb, storetest.Engines(tb)[0])
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	authSvc := auth.NewService(auth.Config{
		Accounts: db, Keys: db,
		Hasher: auth.NewHasher(auth.PasswordParams{Time: 1, Memory: 1024, Threads: 1}, 4),
		Tokens: auth.NewTokens([]byte(strings.Repeat("k", 32)), time.Now),
		Now:    time.Now, Logger: log,
	})
	ctl := control.NewService(control.Config{Sandboxes: db, Templates: db, Quotas: db, Agent: agent, Now: time.Now,
		Logger: log, Stats: db})
	hosts := fleet.New(fleet.Config{Hosts: db, Roles: db, Now: time.Now, Logger: log})
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Auth: authSvc, Control: ctl, Logger: log, Hosts: hosts}))
	tb.Cleanup(srv.Close)
	if err := db.PutTemplate(context.Background(), &wrenn.Template{
		Name: "minimal", Type: wrenn.TemplateBase, SizeBytes: 1 << 20, CreatedAt: time.Now().UTC(),
	}); err != nil {
		tb.Fatal(err)
	}
	hc := srv.Client()
	hc.Transport = coverTransport{tb, spectest.Transport(tb, hc.Transport)}
	return &env{tb: tb, srv: srv, hc: hc, db: db}
}

// client returns a client of the server with opts.
func (e *env) client(opts ...client.Option) *client.Client {
	e.tb.Helper()
	c, err := client.New(e.srv.URL, append([]client.Option{client.WithHTTPClient(e.hc)}, opts...)...)
	if err != nil {
		e.tb.Fatal(err)
	}
	return c
}

// account signs up email and returns a client with an API key of its team.
func (e *env) account(email string) *client.Client {
	e.tb.Helper()
	ctx := context.Background()
	anon := e.client()
	s, err := anon.Signup(ctx, email, "correct horse")
	if err != nil {
		e.tb.Fatal(err)
	}
	k, err := anon.With(client.WithToken(s.Token)).CreateAPIKey(ctx, "test")
	if err != nil {
		e.tb.Fatal(err)
	}
	return anon.With(client.WithAPIKey(k.Key))
}

// sandbox creates a sandbox with c.
func sandbox(tb testing.TB, c *client.Client) *client.Sandbox {
	tb.Helper()
	sb, err := c.CreateSandbox(context.Background(), client.CreateSandboxRequest{})
	if err != nil {
		tb.Fatal(err)
	}
	return sb
}

// wantCode fails tb unless err is an *Error of code and status.
func wantCode(tb testing.TB, err error, status int, code string) {
	tb.Helper()
	e, ok := err.(*client.Error)
	if !ok {
		tb.Fatalf("err = %v (%T), want *client.Error %d %s", err, err, status, code)
	}
	if e.Status != status || e.Code != code || e.Message == "" {
		tb.Fatalf("err = %+v, want status %d code %s and a message", e, status, code)
	}
}

// fakeHost is a mock agent that runs nothing, for the control plane's and
// the client's logic (never for end-to-end tests).
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
