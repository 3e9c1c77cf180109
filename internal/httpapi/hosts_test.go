package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

type hostResp struct {
	ID               string     `json:"id"`
	Type             string     `json:"type"`
	TeamID           *string    `json:"team_id"`
	Provider         *string    `json:"provider"`
	AvailabilityZone *string    `json:"availability_zone"`
	Arch             *string    `json:"arch"`
	CPUCores         *int       `json:"cpu_cores"`
	MemoryMB         *int       `json:"memory_mb"`
	DiskGB           *int       `json:"disk_gb"`
	Address          *string    `json:"address"`
	Status           string     `json:"status"`
	Draining         bool       `json:"draining"`
	Tags             []string   `json:"tags"`
	LastHeartbeatAt  *time.Time `json:"last_heartbeat_at"`
	CreatedBy        string     `json:"created_by"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
}

type createHostResp struct {
	Host              hostResp  `json:"host"`
	RegistrationToken string    `json:"registration_token"`
	ExpiresAt         time.Time `json:"registration_token_expires_at"`
}

// syncBuffer is a log sink that requests may write to while a test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func sha(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// createHost creates a host with token and returns the answer.
func (e *env) createHost(token string, body any) createHostResp {
	e.tb.Helper()
	var c createHostResp
	e.must(201, "POST", "/v1/hosts", bearer(token), body, &c)
	return c
}

// wantStatus fails t unless the exchange answers status with code (if any).
func (e *env) wantStatus(t *testing.T, status int, code, method, path string, h hdr, body any) []byte {
	t.Helper()
	got, out := e.do(method, path, h, body)
	if got != status {
		t.Fatalf("%s %s = %d, want %d: %s", method, path, got, status, out)
	}
	if code != "" && errCode(t, out) != code {
		t.Fatalf("%s %s: code %q, want %q: %s", method, path, errCode(t, out), code, out)
	}
	return out
}

func TestHosts(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			logs := &syncBuffer{}
			e := newEnv(t, engine, envOptions{logTo: logs})
			testHosts(t, e, logs)
		})
	}
}

func testHosts(t *testing.T, e *env, logs *syncBuffer) {
	ctx := context.Background()
	admin := e.signup("root@example.com") // the server's first account: a platform admin
	alice := e.signup("alice@example.com")
	bob := e.signup("bob@example.com")
	var tokens []string // every registration token shown, to look for in logs

	// Creating: who may create what, and what a new host looks like.
	before := time.Now().Add(-time.Second)
	reg := e.createHost(admin.Token, map[string]string{"type": "regular", "provider": "hetzner", "availability_zone": "eu-central"})
	tokens = append(tokens, reg.RegistrationToken)
	h := reg.Host
	if !wrenn.ValidID(wrenn.PrefixHost, h.ID) || h.Type != "regular" || h.TeamID != nil || *h.Provider != "hetzner" ||
		*h.AvailabilityZone != "eu-central" || h.Status != "pending" || h.Draining || len(h.Tags) != 0 || h.Tags == nil ||
		h.Arch != nil || h.CPUCores != nil || h.MemoryMB != nil || h.DiskGB != nil || h.Address != nil ||
		h.LastHeartbeatAt != nil || h.CreatedBy != admin.UserID || h.CreatedAt.Before(before) {
		t.Fatalf("new regular host %+v", h)
	}
	if d := time.Until(reg.ExpiresAt); d < 59*time.Minute || d > time.Hour {
		t.Errorf("registration token valid for %v, want 1h", d)
	}
	if !strings.HasPrefix(reg.RegistrationToken, "wrh_") || len(reg.RegistrationToken) != 4+64 {
		t.Errorf("registration token %q", reg.RegistrationToken)
	}

	aliceHost := e.createHost(alice.Token, map[string]string{"type": "byoc", "team_id": alice.TeamID})
	tokens = append(tokens, aliceHost.RegistrationToken)
	if aliceHost.Host.TeamID == nil || *aliceHost.Host.TeamID != alice.TeamID || aliceHost.Host.Provider != nil || aliceHost.Host.CreatedBy != alice.UserID {
		t.Fatalf("alice's byoc host %+v", aliceHost.Host)
	}
	bobHost := e.createHost(admin.Token, map[string]string{"type": "byoc", "team_id": bob.TeamID})
	tokens = append(tokens, bobHost.RegistrationToken)

	t.Run("create refusals", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			token  string
			body   any
			status int
			code   string
		}{
			{"regular by a non-admin", alice.Token, map[string]string{"type": "regular"}, 403, "forbidden"},
			{"byoc for another team", alice.Token, map[string]string{"type": "byoc", "team_id": bob.TeamID}, 403, "forbidden"},
			{"byoc for no team", alice.Token, map[string]string{"type": "byoc", "team_id": "team-none"}, 403, "forbidden"},
			{"admin: byoc for no team", admin.Token, map[string]string{"type": "byoc", "team_id": "team-none"}, 400, "invalid_request"},
			{"no type", admin.Token, map[string]string{}, 400, "invalid_request"},
			{"unknown type", admin.Token, map[string]string{"type": "gpu"}, 400, "invalid_request"},
			{"byoc without team", admin.Token, map[string]string{"type": "byoc"}, 400, "invalid_request"},
			{"regular with a team", admin.Token, map[string]string{"type": "regular", "team_id": admin.TeamID}, 400, "invalid_request"},
			{"long provider", admin.Token, map[string]string{"type": "regular", "provider": strings.Repeat("p", 65)}, 400, "invalid_request"},
			{"control character", admin.Token, map[string]string{"type": "regular", "availability_zone": "eu\x00"}, 400, "invalid_request"},
			{"team_id not a string", admin.Token, `{"type":"byoc","team_id":5}`, 400, "invalid_request"},
			{"malformed JSON", admin.Token, `{"type":`, 400, "invalid_request"},
			{"no body", admin.Token, ``, 400, "invalid_request"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e.wantStatus(t, tc.status, tc.code, "POST", "/v1/hosts", bearer(tc.token), tc.body)
			})
		}
		e.wantStatus(t, 401, "unauthorized", "POST", "/v1/hosts", nil, map[string]string{"type": "regular"})
		// Hosts are for logged-in users: an API key is no way in.
		key := e.newKey(admin.Token)
		e.wantStatus(t, 401, "unauthorized", "GET", "/v1/hosts", apiKey(key), nil)
		e.wantStatus(t, 401, "unauthorized", "GET", "/v1/hosts", bearer("not.a.jwt"), nil)
	})

	t.Run("token kept as its hash only", func(t *testing.T) {
		stored, err := e.db.GetHost(ctx, reg.Host.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(stored.TokenHash, sha(reg.RegistrationToken)) {
			t.Errorf("stored token hash is not the token's SHA-256")
		}
		if bytes.Contains(stored.TokenHash, []byte(reg.RegistrationToken)) {
			t.Errorf("the store keeps the token itself")
		}
		got, err := e.hosts.TokenHost(ctx, reg.RegistrationToken)
		if err != nil || got.ID != reg.Host.ID {
			t.Fatalf("TokenHost(new token) = %v, %v", got, err)
		}
	})

	t.Run("list and get", func(t *testing.T) {
		ids := func(token string) []string {
			var hs []hostResp
			e.must(200, "GET", "/v1/hosts", bearer(token), nil, &hs)
			var out []string
			for _, h := range hs {
				out = append(out, h.ID)
			}
			return out
		}
		for _, tc := range []struct {
			who   string
			token string
			want  []string
		}{
			{"admin", admin.Token, []string{reg.Host.ID, aliceHost.Host.ID, bobHost.Host.ID}},
			{"alice", alice.Token, []string{aliceHost.Host.ID}},
			{"bob", bob.Token, []string{bobHost.Host.ID}},
		} {
			if got := ids(tc.token); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("%s lists %v, want %v", tc.who, got, tc.want)
			}
		}
		var got hostResp
		e.must(200, "GET", "/v1/hosts/"+aliceHost.Host.ID, bearer(alice.Token), nil, &got)
		if got.ID != aliceHost.Host.ID || got.Status != "pending" {
			t.Errorf("alice gets %+v", got)
		}
		e.must(200, "GET", "/v1/hosts/"+aliceHost.Host.ID, bearer(admin.Token), nil, &got)
		for _, tc := range []struct{ who, token, id string }{
			{"alice, a regular host", alice.Token, reg.Host.ID},
			{"bob, alice's host", bob.Token, aliceHost.Host.ID},
			{"alice, bob's host", alice.Token, bobHost.Host.ID},
			{"admin, an unknown host", admin.Token, wrenn.NewID(wrenn.PrefixHost)},
			{"admin, not a host ID", admin.Token, "sb-" + strings.TrimPrefix(reg.Host.ID, "host-")},
		} {
			e.wantStatus(t, 404, "not_found", "GET", "/v1/hosts/"+tc.id, bearer(tc.token), nil)
		}
		e.wantStatus(t, 401, "unauthorized", "GET", "/v1/hosts/"+reg.Host.ID, nil, nil)
	})

	t.Run("tags", func(t *testing.T) {
		path := "/v1/hosts/" + aliceHost.Host.ID + "/tags"
		for _, tag := range []string{"gpu", "region=eu-west", "a.b_c:d", "gpu"} {
			e.wantStatus(t, 204, "", "POST", path, bearer(alice.Token), map[string]string{"tag": tag})
		}
		var tags []string
		e.must(200, "GET", path, bearer(alice.Token), nil, &tags)
		if strings.Join(tags, " ") != "a.b_c:d gpu region=eu-west" {
			t.Errorf("tags %v", tags)
		}
		var h hostResp
		e.must(200, "GET", "/v1/hosts/"+aliceHost.Host.ID, bearer(admin.Token), nil, &h)
		if strings.Join(h.Tags, " ") != "a.b_c:d gpu region=eu-west" || !h.UpdatedAt.After(h.CreatedAt) {
			t.Errorf("host after tagging: %+v", h)
		}
		for _, bad := range []string{"", "a b", "-gpu", "gpu/1", strings.Repeat("t", 65), "é"} {
			e.wantStatus(t, 400, "invalid_request", "POST", path, bearer(alice.Token), map[string]string{"tag": bad})
		}
		e.wantStatus(t, 400, "invalid_request", "POST", path, bearer(alice.Token), map[string]any{"tag": 7})
		e.wantStatus(t, 400, "invalid_request", "DELETE", path+"/a%20b", bearer(alice.Token), nil)
		// Others do not see the host, so cannot touch its tags.
		e.wantStatus(t, 404, "not_found", "POST", path, bearer(bob.Token), map[string]string{"tag": "mine"})
		e.wantStatus(t, 404, "not_found", "GET", path, bearer(bob.Token), nil)
		e.wantStatus(t, 404, "not_found", "DELETE", path+"/gpu", bearer(bob.Token), nil)
		e.wantStatus(t, 404, "not_found", "POST", "/v1/hosts/"+reg.Host.ID+"/tags", bearer(alice.Token), map[string]string{"tag": "x"})
		// An admin may tag any host.
		e.wantStatus(t, 204, "", "POST", "/v1/hosts/"+reg.Host.ID+"/tags", bearer(admin.Token), map[string]string{"tag": "shared"})

		e.wantStatus(t, 204, "", "DELETE", path+"/gpu", bearer(alice.Token), nil)
		e.wantStatus(t, 204, "", "DELETE", path+"/gpu", bearer(alice.Token), nil)
		e.must(200, "GET", path, bearer(alice.Token), nil, &tags)
		if strings.Join(tags, " ") != "a.b_c:d region=eu-west" {
			t.Errorf("tags after removing gpu: %v", tags)
		}
	})

	t.Run("regenerate token", func(t *testing.T) {
		path := "/v1/hosts/" + aliceHost.Host.ID + "/token"
		var again createHostResp
		e.must(201, "POST", path, bearer(alice.Token), nil, &again)
		tokens = append(tokens, again.RegistrationToken)
		if again.RegistrationToken == aliceHost.RegistrationToken || again.Host.ID != aliceHost.Host.ID || again.Host.Status != "pending" {
			t.Fatalf("regenerated %+v", again)
		}
		// The old token is gone from the store; the new one's hash is there.
		if _, err := e.db.HostByTokenHash(ctx, sha(aliceHost.RegistrationToken)); wrenn.ErrorCode(err) != wrenn.ENotFound {
			t.Errorf("old token's hash still finds the host: %v", err)
		}
		if _, err := e.hosts.TokenHost(ctx, aliceHost.RegistrationToken); wrenn.ErrorCode(err) != wrenn.EUnauthorized {
			t.Errorf("old token still accepted: %v", err)
		}
		if got, err := e.hosts.TokenHost(ctx, again.RegistrationToken); err != nil || got.ID != aliceHost.Host.ID {
			t.Errorf("new token: %v, %v", got, err)
		}
		e.wantStatus(t, 404, "not_found", "POST", path, bearer(bob.Token), nil)
		e.wantStatus(t, 404, "not_found", "POST", "/v1/hosts/"+reg.Host.ID+"/token", bearer(alice.Token), nil)

		// Only a pending host gets a token.
		online := onlineHost(t, e, admin.UserID, "")
		e.wantStatus(t, 409, "conflict", "POST", "/v1/hosts/"+online.ID+"/token", bearer(admin.Token), nil)
		if _, err := e.db.DeleteHost(ctx, online.ID, true, time.Now()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("drain", func(t *testing.T) {
		online := onlineHost(t, e, admin.UserID, alice.TeamID)
		path := "/v1/hosts/" + online.ID
		var h hostResp
		e.must(200, "POST", path+"/drain", bearer(alice.Token), nil, &h)
		if h.Status != "draining" || !h.Draining {
			t.Errorf("drained online host: status %s, draining %v", h.Status, h.Draining)
		}
		e.must(200, "POST", path+"/drain", bearer(alice.Token), nil, &h)
		e.must(200, "GET", path, bearer(alice.Token), nil, &h)
		if h.Status != "draining" {
			t.Errorf("draining host reads %s", h.Status)
		}
		e.must(200, "POST", path+"/undrain", bearer(admin.Token), nil, &h)
		if h.Status != "online" || h.Draining {
			t.Errorf("undrained host: status %s, draining %v", h.Status, h.Draining)
		}
		// A pending host may be drained: it stays pending and will not take sandboxes once registered.
		e.must(200, "POST", "/v1/hosts/"+aliceHost.Host.ID+"/drain", bearer(alice.Token), nil, &h)
		if h.Status != "pending" || !h.Draining {
			t.Errorf("drained pending host: status %s, draining %v", h.Status, h.Draining)
		}
		e.must(200, "POST", "/v1/hosts/"+aliceHost.Host.ID+"/undrain", bearer(alice.Token), nil, &h)
		e.wantStatus(t, 404, "not_found", "POST", path+"/drain", bearer(bob.Token), nil)
		e.wantStatus(t, 404, "not_found", "POST", "/v1/hosts/"+reg.Host.ID+"/drain", bearer(alice.Token), nil)
		e.wantStatus(t, 405, "method_not_allowed", "GET", path+"/drain", bearer(alice.Token), nil)
		if _, err := e.db.DeleteHost(ctx, online.ID, true, time.Now()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("delete preview and delete", func(t *testing.T) {
		target := e.createHost(alice.Token, map[string]string{"type": "byoc", "team_id": alice.TeamID}).Host
		path := "/v1/hosts/" + target.ID
		var preview struct {
			Host       hostResp `json:"host"`
			SandboxIDs []string `json:"sandbox_ids"`
		}
		e.must(200, "GET", path+"/delete-preview", bearer(alice.Token), nil, &preview)
		if preview.Host.ID != target.ID || preview.SandboxIDs == nil || len(preview.SandboxIDs) != 0 {
			t.Fatalf("preview of an empty host: %+v", preview)
		}

		// Sandboxes on the host (placement is to come: recorded directly).
		var want []string
		for i, st := range []wrenn.SandboxStatus{wrenn.StatusRunning, wrenn.StatusPaused, wrenn.StatusStopped} {
			sb := placedSandbox(t, e, alice.TeamID, target.ID, st, time.Duration(i)*time.Second)
			if st != wrenn.StatusStopped {
				want = append(want, sb.ID)
			}
		}
		elsewhere := placedSandbox(t, e, alice.TeamID, "", wrenn.StatusRunning, 10*time.Second)

		e.must(200, "GET", path+"/delete-preview", bearer(alice.Token), nil, &preview)
		if strings.Join(preview.SandboxIDs, ",") != strings.Join(want, ",") {
			t.Fatalf("preview lists %v, want %v", preview.SandboxIDs, want)
		}
		e.wantStatus(t, 404, "not_found", "GET", path+"/delete-preview", bearer(bob.Token), nil)
		e.wantStatus(t, 404, "not_found", "GET", "/v1/hosts/"+reg.Host.ID+"/delete-preview", bearer(alice.Token), nil)

		out := e.wantStatus(t, 409, "host_has_sandboxes", "DELETE", path, bearer(alice.Token), nil)
		var busy struct {
			Error struct {
				Message    string   `json:"message"`
				SandboxIDs []string `json:"sandbox_ids"`
			} `json:"error"`
		}
		if err := json.Unmarshal(out, &busy); err != nil || strings.Join(busy.Error.SandboxIDs, ",") != strings.Join(want, ",") || busy.Error.Message == "" {
			t.Fatalf("409 answer %s", out)
		}
		e.wantStatus(t, 409, "host_has_sandboxes", "DELETE", path+"?force=false", bearer(alice.Token), nil)
		e.wantStatus(t, 400, "invalid_request", "DELETE", path+"?force=yes", bearer(alice.Token), nil)
		e.wantStatus(t, 404, "not_found", "DELETE", path+"?force=true", bearer(bob.Token), nil)
		e.must(200, "GET", path, bearer(alice.Token), nil, nil) // still there

		e.wantStatus(t, 204, "", "DELETE", path+"?force=true", bearer(alice.Token), nil)
		e.wantStatus(t, 404, "not_found", "GET", path, bearer(alice.Token), nil)
		e.wantStatus(t, 404, "not_found", "DELETE", path+"?force=true", bearer(alice.Token), nil)
		for _, id := range want {
			var sb sandboxResp
			e.must(200, "GET", "/v1/sandboxes/"+id, bearer(alice.Token), nil, &sb)
			if sb.Status != "stopped" {
				t.Errorf("sandbox %s on a force-deleted host is %s", id, sb.Status)
			}
		}
		var sb sandboxResp
		e.must(200, "GET", "/v1/sandboxes/"+elsewhere.ID, bearer(alice.Token), nil, &sb)
		if sb.Status != "running" {
			t.Errorf("a sandbox on another host is %s after the delete", sb.Status)
		}

		// Regular hosts are an admin's; an empty host goes without force.
		e.wantStatus(t, 404, "not_found", "DELETE", "/v1/hosts/"+reg.Host.ID, bearer(alice.Token), nil)
		e.wantStatus(t, 204, "", "DELETE", "/v1/hosts/"+bobHost.Host.ID, bearer(admin.Token), nil)
		e.wantStatus(t, 404, "not_found", "GET", "/v1/hosts/"+bobHost.Host.ID, bearer(bob.Token), nil)
	})

	t.Run("admin looked up per request", func(t *testing.T) {
		// alice's JWT does not change; what the store says of her does.
		body := map[string]string{"type": "regular"}
		e.wantStatus(t, 403, "forbidden", "POST", "/v1/hosts", bearer(alice.Token), body)
		if _, err := e.db.SetAdmin(ctx, "alice@example.com", true); err != nil {
			t.Fatal(err)
		}
		promoted := e.createHost(alice.Token, body)
		tokens = append(tokens, promoted.RegistrationToken)
		e.must(200, "GET", "/v1/hosts/"+reg.Host.ID, bearer(alice.Token), nil, nil)
		if _, err := e.db.SetAdmin(ctx, "alice@example.com", false); err != nil {
			t.Fatal(err)
		}
		e.wantStatus(t, 403, "forbidden", "POST", "/v1/hosts", bearer(alice.Token), body)
		e.wantStatus(t, 404, "not_found", "GET", "/v1/hosts/"+promoted.Host.ID, bearer(alice.Token), nil)
	})

	t.Run("token shown once, never logged", func(t *testing.T) {
		var all []hostResp
		_, listed := e.do("GET", "/v1/hosts", bearer(admin.Token), nil)
		if err := json.Unmarshal(listed, &all); err != nil {
			t.Fatal(err)
		}
		for _, h := range all {
			_, got := e.do("GET", "/v1/hosts/"+h.ID, bearer(admin.Token), nil)
			listed = append(listed, got...)
		}
		log := logs.String()
		if !strings.Contains(log, "host created") {
			t.Fatalf("the log has no host creations:\n%s", log)
		}
		for _, tok := range tokens {
			if strings.Contains(string(listed), tok) || strings.Contains(string(listed), "registration_token") {
				t.Errorf("a host listing shows a registration token")
			}
			if strings.Contains(log, tok) || strings.Contains(log, tok[4:20]) {
				t.Errorf("a registration token is in the log")
			}
		}
	})
}

// onlineHost records a host as a registered agent will leave it, since
// agents do not join yet. teamID "" makes a regular host.
func onlineHost(t *testing.T, e *env, createdBy, teamID string) *wrenn.Host {
	t.Helper()
	cores, mem, disk := 8, 16384, 200
	now := time.Now()
	typ := wrenn.HostRegular
	if teamID != "" {
		typ = wrenn.HostBYOC
	}
	h := &wrenn.Host{ID: wrenn.NewID(wrenn.PrefixHost), Type: typ, TeamID: teamID, Arch: "x86_64",
		CPUCores: &cores, MemoryMB: &mem, DiskGB: &disk, Address: "10.0.0.7:9090", Status: wrenn.HostOnline,
		LastHeartbeatAt: &now, CreatedBy: createdBy, CreatedAt: now, UpdatedAt: now}
	if err := e.db.CreateHost(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	return h
}

// placedSandbox records a sandbox of the team on host hostID, as
// placement will (it does not exist yet).
func placedSandbox(t *testing.T, e *env, teamID, hostID string, status wrenn.SandboxStatus, age time.Duration) *wrenn.Sandbox {
	t.Helper()
	at := time.Now().Add(-time.Hour + age)
	sb := &wrenn.Sandbox{ID: wrenn.NewID(wrenn.PrefixSandbox), TeamID: teamID, Template: "minimal", Status: status,
		VCPUs: 1, MemoryMB: 512, HostID: hostID, CreatedAt: at, LastUpdated: at}
	if err := e.db.CreateSandbox(context.Background(), sb); err != nil {
		t.Fatal(err)
	}
	return sb
}
