package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/client"
)

func TestNew(t *testing.T) {
	for _, u := range []string{"", "localhost:8080", "ftp://x", "http://"} {
		if _, err := client.New(u); err == nil {
			t.Errorf("New(%q) = nil error", u)
		}
	}
	c, err := client.New("http://example.com:8080/")
	if err != nil || c.BaseURL() != "http://example.com:8080" {
		t.Fatalf("New = %v, %v", c, err)
	}
}

// TestAccount: signup, login and API keys, and their errors as *Error.
func TestAccount(t *testing.T) {
	e := newEnv(t, fakeHost())
	ctx := context.Background()
	anon := e.client()
	s, err := anon.Signup(ctx, "acc@example.com", "correct horse")
	if err != nil || s.Token == "" || s.Email != "acc@example.com" || s.TeamID == "" || s.UserID == "" {
		t.Fatalf("Signup = %+v, %v", s, err)
	}
	_, err = anon.Signup(ctx, "acc@example.com", "correct horse")
	wantCode(t, err, 409, client.CodeConflict)
	if !client.IsConflict(err) {
		t.Error("IsConflict = false")
	}
	_, err = anon.Signup(ctx, "short@example.com", "short")
	wantCode(t, err, 400, client.CodeInvalid)
	_, err = anon.Login(ctx, "acc@example.com", "wrong password")
	wantCode(t, err, 401, client.CodeUnauthorized)
	l, err := anon.Login(ctx, "acc@example.com", "correct horse")
	if err != nil || l.TeamID != s.TeamID {
		t.Fatalf("Login = %+v, %v", l, err)
	}

	_, err = anon.CreateAPIKey(ctx, "x")
	wantCode(t, err, 401, client.CodeUnauthorized)
	acct := e.client(client.WithToken(l.Token))
	k, err := acct.CreateAPIKey(ctx, "ci")
	if err != nil || k.Key == "" || k.Name != "ci" || k.TeamID != s.TeamID || k.KeyPrefix == "" {
		t.Fatalf("CreateAPIKey = %+v, %v", k, err)
	}
	def, err := acct.CreateAPIKey(ctx, "")
	if err != nil || def.Name != "Unnamed API Key" {
		t.Fatalf("CreateAPIKey(\"\") = %+v, %v", def, err)
	}
	ks, err := acct.ListAPIKeys(ctx)
	if err != nil || len(ks) != 2 {
		t.Fatalf("ListAPIKeys = %+v, %v", ks, err)
	}
	for _, got := range ks {
		if got.Key != "" {
			t.Errorf("listed key %s carries its plaintext", got.ID)
		}
	}
	// The key works, until it is deleted.
	withKey := e.client(client.WithAPIKey(k.Key))
	if _, err := withKey.ListSandboxes(ctx, client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := acct.DeleteAPIKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	_, err = withKey.ListSandboxes(ctx, client.ListOptions{})
	wantCode(t, err, 401, client.CodeUnauthorized)
}

// TestSandboxLifecycle: every create option reaches the server and comes
// back; get, list with filters, ping, pause, resume, destroy; another
// team's sandbox is not found; states the lifecycle refuses are conflicts.
func TestSandboxLifecycle(t *testing.T) {
	h := fakeHost()
	var spec wrenn.SandboxSpec
	h.CreateSandboxFn = func(_ context.Context, s wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
		spec = s
		return wrenn.SandboxNet{GuestIP: "169.254.0.21", HostIP: "169.254.0.22"}, nil
	}
	e := newEnv(t, h)
	ctx := context.Background()
	c := e.account("life@example.com")
	other := e.account("life-other@example.com")

	sb, err := c.CreateSandbox(ctx, client.CreateSandboxRequest{
		Template: "minimal", VCPUs: 2, MemoryMB: 1024, TimeoutSec: client.Ptr(0), AutoPause: client.Ptr(true),
		Envs: map[string]string{"A": "1"}, Metadata: map[string]string{"team": "a", "env": "prod"},
		AllowInternetAccess: client.Ptr(false),
		Network:             &client.NetworkPolicy{AllowOut: []string{"1.1.1.0/24"}, DenyOut: []string{"8.8.8.8/32"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if sb.Status != client.StatusRunning || sb.VCPUs != 2 || sb.MemoryMB != 1024 || sb.TimeoutSec != 0 || !sb.AutoPause ||
		sb.Metadata["env"] != "prod" || sb.AllowInternetAccess || !slices.Equal(sb.Network.AllowOut, []string{"1.1.1.0/24"}) ||
		!slices.Equal(sb.Network.DenyOut, []string{"8.8.8.8/32"}) || sb.GuestIP != "169.254.0.21" || sb.StartedAt == nil {
		t.Fatalf("created %+v", sb)
	}
	if spec.VCPUs != 2 || spec.Network.Internet {
		t.Errorf("agent got %+v", spec)
	}
	plain := sandbox(t, c)
	if plain.TimeoutSec != 300 || plain.AutoPause || plain.Template != "minimal" {
		t.Errorf("defaults: %+v", plain)
	}

	got, err := c.GetSandbox(ctx, sb.ID)
	if err != nil || got.ID != sb.ID || got.Metadata["team"] != "a" {
		t.Fatalf("GetSandbox = %+v, %v", got, err)
	}
	_, err = other.GetSandbox(ctx, sb.ID)
	wantCode(t, err, 404, client.CodeNotFound)
	if !client.IsNotFound(err) || !errors.As(err, new(*client.Error)) {
		t.Error("IsNotFound or errors.As fail")
	}
	_, err = c.CreateSandbox(ctx, client.CreateSandboxRequest{VCPUs: -1})
	wantCode(t, err, 400, client.CodeInvalid)

	list, err := c.ListSandboxes(ctx, client.ListOptions{Metadata: map[string]string{"team": "a", "env": "prod"}})
	if err != nil || len(list) != 1 || list[0].ID != sb.ID {
		t.Fatalf("list by metadata = %+v, %v", list, err)
	}
	list, err = c.ListSandboxes(ctx, client.ListOptions{})
	if err != nil || len(list) != 2 || list[0].ID != plain.ID {
		t.Fatalf("list = %+v, %v", list, err)
	}

	if err := c.PingSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	_, err = c.ResumeSandbox(ctx, sb.ID)
	wantCode(t, err, 409, client.CodeConflict)
	p, err := c.PauseSandbox(ctx, sb.ID)
	if err != nil || p.Status != client.StatusPaused {
		t.Fatalf("PauseSandbox = %+v, %v", p, err)
	}
	err = c.PingSandbox(ctx, sb.ID)
	wantCode(t, err, 409, client.CodeConflict)
	list, err = c.ListSandboxes(ctx, client.ListOptions{Status: []client.SandboxStatus{client.StatusPaused}})
	if err != nil || len(list) != 1 || list[0].ID != sb.ID {
		t.Fatalf("list paused = %+v, %v", list, err)
	}
	r, err := c.ResumeSandbox(ctx, sb.ID)
	if err != nil || r.Status != client.StatusRunning {
		t.Fatalf("ResumeSandbox = %+v, %v", r, err)
	}
	if err := c.DestroySandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	got, err = c.GetSandbox(ctx, sb.ID)
	if err != nil || got.Status != client.StatusStopped {
		t.Fatalf("destroyed: %+v, %v", got, err)
	}
	err = other.DestroySandbox(ctx, plain.ID)
	wantCode(t, err, 404, client.CodeNotFound)
}

// TestMetrics: a sandbox's metrics and the team's stats and usage.
func TestMetrics(t *testing.T) {
	h := fakeHost()
	now := time.Now().Truncate(time.Second)
	h.SandboxMetricsFn = func(context.Context, string, time.Duration) ([]wrenn.MetricPoint, error) {
		return []wrenn.MetricPoint{{Time: now, CPUPct: 12.5, MemBytes: 1 << 20, DiskBytes: 4096}}, nil
	}
	e := newEnv(t, h)
	ctx := context.Background()
	c := e.account("metrics@example.com")
	sb := sandbox(t, c)
	m, err := c.SandboxMetrics(ctx, sb.ID, "")
	if err != nil || m.Range != "10m" || len(m.Points) != 1 || m.Points[0].CPUPct != 12.5 || !m.Points[0].Time().Equal(now) {
		t.Fatalf("SandboxMetrics = %+v, %v", m, err)
	}
	_, err = c.SandboxMetrics(ctx, sb.ID, "3d")
	wantCode(t, err, 400, client.CodeInvalid)

	st, err := c.SandboxStats(ctx, "5m")
	if err != nil || st.Range != "5m" || st.Current.RunningCount != 1 || st.Current.VCPUsReserved < 1 || len(st.Series.Labels) == 0 ||
		len(st.Series.Running) != len(st.Series.Labels) {
		t.Fatalf("SandboxStats = %+v, %v", st, err)
	}
	today := time.Now().UTC().Format(time.DateOnly)
	u, err := c.SandboxUsage(ctx, "", today)
	if err != nil || u.To != today || len(u.Points) != 31 {
		t.Fatalf("SandboxUsage = %+v, %v", u, err)
	}
	_, err = c.SandboxUsage(ctx, "yesterday", "")
	wantCode(t, err, 400, client.CodeInvalid)
}

// TestSnapshots: create (a taken name is a conflict unless overwritten),
// list by type, delete.
func TestSnapshots(t *testing.T) {
	e := newEnv(t, fakeHost())
	ctx := context.Background()
	c := e.account("snap@example.com")
	tpl, err := c.CreateSnapshot(ctx, client.CreateSnapshotRequest{SandboxID: sandbox(t, c).ID, Name: "mine"})
	if err != nil || tpl.Name != "mine" || tpl.Type != client.TemplateSnapshot || tpl.VCPUs == nil || *tpl.VCPUs != 1 {
		t.Fatalf("CreateSnapshot = %+v, %v", tpl, err)
	}
	_, err = c.CreateSnapshot(ctx, client.CreateSnapshotRequest{SandboxID: sandbox(t, c).ID, Name: "mine"})
	wantCode(t, err, 409, client.CodeConflict)
	if _, err := c.CreateSnapshot(ctx, client.CreateSnapshotRequest{SandboxID: sandbox(t, c).ID, Name: "mine", Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	snaps, err := c.ListSnapshots(ctx, client.TemplateSnapshot)
	if err != nil || len(snaps) != 1 || snaps[0].Name != "mine" {
		t.Fatalf("ListSnapshots(snapshot) = %+v, %v", snaps, err)
	}
	all, err := c.ListSnapshots(ctx, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("ListSnapshots = %+v, %v", all, err)
	}
	if err := c.DeleteSnapshot(ctx, "mine"); err != nil {
		t.Fatal(err)
	}
	err = c.DeleteSnapshot(ctx, "mine")
	wantCode(t, err, 404, client.CodeNotFound)
}

// TestErrorBody: an answer that is not the envelope (a proxy's) still
// becomes an *Error with its status.
func TestErrorBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		http.Error(w, "upstream unreachable", http.StatusBadGateway)
	}))
	defer srv.Close()
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetSandbox(context.Background(), "sb-x")
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 502 || e.Code != client.CodeHostAgent || e.Message != "upstream unreachable" ||
		e.RetryAfter != 3*time.Second {
		t.Fatalf("err = %#v", err)
	}
	_, err = c.ExecStream(context.Background(), "sb-x", client.Command("true"))
	if !errors.As(err, &e) || e.Status != 502 {
		t.Fatalf("stream err = %#v", err)
	}
}

// TestHeaders: credentials and the user agent go on every request, the
// base URL's path is kept, and ids are escaped into paths.
func TestHeaders(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"sb-1","status":"running"}`))
	}))
	defer srv.Close()
	c, err := client.New(srv.URL+"/api/", client.WithAPIKey("wrn_key"), client.WithToken("jwt"), client.WithUserAgent("wrenn-cli/1"))
	if err != nil {
		t.Fatal(err)
	}
	sb, err := c.GetSandbox(context.Background(), "a/b")
	if err != nil || sb.ID != "sb-1" {
		t.Fatalf("GetSandbox = %+v, %v", sb, err)
	}
	if got.Header.Get("X-API-Key") != "wrn_key" || got.Header.Get("Authorization") != "Bearer jwt" ||
		got.Header.Get("User-Agent") != "wrenn-cli/1" || got.URL.EscapedPath() != "/api/v1/sandboxes/a%2Fb" {
		t.Errorf("request %s %v", got.URL.EscapedPath(), got.Header)
	}
}
