package fleet_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/fleet"
	"github.com/wrennhq/wrenn/internal/store"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// roles answers from the store unless its functions say otherwise: a
// function-field fake for the roles the API cannot make yet (a member of
// a team who is not its owner).
type roles struct {
	db           *store.DB
	MemberRoleFn func(userID, teamID string) (string, bool)
}

func (r roles) IsAdmin(ctx context.Context, userID string) (bool, error) {
	return r.db.IsAdmin(ctx, userID)
}

func (r roles) MemberRole(ctx context.Context, userID, teamID string) (string, error) {
	if r.MemberRoleFn != nil {
		if role, ok := r.MemberRoleFn(userID, teamID); ok {
			return role, nil
		}
	}
	return r.db.MemberRole(ctx, userID, teamID)
}

type fixture struct {
	db    *store.DB
	clock *clock
	svc   *fleet.Service
	admin fleet.Caller
	owner fleet.Caller
	// member belongs to owner's team but is not its owner.
	member fleet.Caller
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := storetest.MustOpen(t, storetest.Engines(t)[0])
	f := &fixture{db: db, clock: &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	account := func(email string) fleet.Caller {
		u := &wrenn.User{ID: wrenn.NewID(wrenn.PrefixUser), Email: email, PasswordHash: "h", CreatedAt: f.clock.Now()}
		tm := &wrenn.Team{ID: wrenn.NewID(wrenn.PrefixTeam), Name: email, CreatedAt: f.clock.Now()}
		if err := db.CreateAccount(context.Background(), u, tm); err != nil {
			t.Fatal(err)
		}
		return fleet.Caller{UserID: u.ID, TeamID: tm.ID}
	}
	f.admin, f.owner = account("admin@example.com"), account("owner@example.com")
	memberOnly := account("member@example.com")
	f.member = fleet.Caller{UserID: memberOnly.UserID, TeamID: f.owner.TeamID}
	r := roles{db: db, MemberRoleFn: func(userID, teamID string) (string, bool) {
		if userID == f.member.UserID && teamID == f.owner.TeamID {
			return "member", true
		}
		return "", false
	}}
	f.svc = fleet.New(fleet.Config{Hosts: db, Roles: r, Now: f.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return f
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := wrenn.ErrorCode(err); got != code {
		t.Fatalf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

// TestMemberNotOwner: a member of a team who is not an owner sees its BYOC
// hosts but may change none of them.
func TestMemberNotOwner(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	h, _, err := f.svc.Create(ctx, f.owner, fleet.CreateRequest{Type: wrenn.HostBYOC, TeamID: f.owner.TeamID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Get(ctx, f.member, h.ID); err != nil {
		t.Fatalf("member cannot see the team's host: %v", err)
	}
	if hs, err := f.svc.List(ctx, f.member); err != nil || len(hs) != 1 || hs[0].ID != h.ID {
		t.Fatalf("member lists %v, %v", hs, err)
	}
	if tags, err := f.svc.Tags(ctx, f.member, h.ID); err != nil || len(tags) != 0 {
		t.Fatalf("member's tags: %v, %v", tags, err)
	}
	for name, op := range map[string]func() error{
		"create": func() error {
			_, _, err := f.svc.Create(ctx, f.member, fleet.CreateRequest{Type: wrenn.HostBYOC, TeamID: f.owner.TeamID})
			return err
		},
		"delete":         func() error { _, err := f.svc.Delete(ctx, f.member, h.ID, true); return err },
		"delete preview": func() error { _, _, err := f.svc.DeletePreview(ctx, f.member, h.ID); return err },
		"token":          func() error { _, _, err := f.svc.RegenerateToken(ctx, f.member, h.ID); return err },
		"add tag":        func() error { return f.svc.AddTag(ctx, f.member, h.ID, "x") },
		"remove tag":     func() error { return f.svc.RemoveTag(ctx, f.member, h.ID, "x") },
		"drain":          func() error { _, err := f.svc.SetDraining(ctx, f.member, h.ID, true); return err },
	} {
		wantCode(t, name, op(), wrenn.EForbidden)
	}
	if _, err := f.svc.Get(ctx, f.owner, h.ID); err != nil {
		t.Fatalf("the refusals removed the host: %v", err)
	}
}

// TestTokenHost checks the check registration will make: the current
// token of a pending host, before it expires, and nothing else.
func TestTokenHost(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	h, token, err := f.svc.Create(ctx, f.admin, fleet.CreateRequest{Type: wrenn.HostRegular})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(token, fleet.TokenPrefix) || h.TokenExpiresAt == nil || !h.TokenExpiresAt.Equal(f.clock.Now().Add(fleet.DefaultTokenTTL)) {
		t.Fatalf("token %q expiring %v", token, h.TokenExpiresAt)
	}
	got, err := f.svc.TokenHost(ctx, token)
	if err != nil || got.ID != h.ID {
		t.Fatalf("TokenHost = %v, %v", got, err)
	}
	for _, bad := range []string{"", "wrh_", token[:len(token)-1], token + "0", strings.Replace(token, "wrh_", "wrn_", 1),
		token[:len(token)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", token[len(token)-1])+1)%16])} {
		_, err := f.svc.TokenHost(ctx, bad)
		wantCode(t, "token "+bad, err, wrenn.EUnauthorized)
	}

	// Expiry: valid until the hour is up, not at it.
	f.clock.Add(fleet.DefaultTokenTTL - time.Second)
	if _, err := f.svc.TokenHost(ctx, token); err != nil {
		t.Fatalf("a token a second from expiry: %v", err)
	}
	f.clock.Add(time.Second)
	_, err = f.svc.TokenHost(ctx, token)
	wantCode(t, "expired token", err, wrenn.EUnauthorized)

	// A regenerated token replaces the expired one and runs its own hour.
	_, fresh, err := f.svc.RegenerateToken(ctx, f.admin, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.TokenHost(ctx, fresh); err != nil {
		t.Fatalf("regenerated token: %v", err)
	}
	_, err = f.svc.TokenHost(ctx, token)
	wantCode(t, "replaced token", err, wrenn.EUnauthorized)

	// A host that is no longer pending takes no token, even its last one;
	// the same record pending would.
	for status, digits := range map[wrenn.HostStatus]string{wrenn.HostPending: "a1", wrenn.HostOnline: "b2"} {
		tok := fleet.TokenPrefix + strings.Repeat(digits, 32)
		exp := f.clock.Now().Add(time.Hour)
		rec := &wrenn.Host{ID: wrenn.NewID(wrenn.PrefixHost), Type: wrenn.HostRegular, Status: status,
			TokenHash: fleet.HashToken(tok), TokenExpiresAt: &exp, CreatedBy: f.admin.UserID, CreatedAt: f.clock.Now(), UpdatedAt: f.clock.Now()}
		if err := f.db.CreateHost(ctx, rec); err != nil {
			t.Fatal(err)
		}
		got, err := f.svc.TokenHost(ctx, tok)
		if status == wrenn.HostPending {
			if err != nil || got.ID != rec.ID {
				t.Fatalf("pending host's token %s: %v, %v", tok, got, err)
			}
			continue
		}
		wantCode(t, "an online host's token", err, wrenn.EUnauthorized)
	}
}

// TestForcedDeleteEndsSandboxes: a forced delete has the sandboxes on the
// host ended there (Config.EndSandboxes) before it records them stopped:
// the ones its delete-preview listed, no others; a delete without force
// ends nothing.
func TestForcedDeleteEndsSandboxes(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	var ended []string
	f.svc = fleet.New(fleet.Config{Hosts: f.db, Roles: roles{db: f.db}, Now: f.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		EndSandboxes: func(_ context.Context, hostID string, ids []string) { ended = append(ended, ids...) }})
	h, _, err := f.svc.Create(ctx, f.admin, fleet.CreateRequest{Type: wrenn.HostRegular})
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := f.svc.Create(ctx, f.admin, fleet.CreateRequest{Type: wrenn.HostRegular})
	if err != nil {
		t.Fatal(err)
	}
	var on []string
	for i, hostID := range []string{h.ID, other.ID, h.ID} {
		sb := &wrenn.Sandbox{ID: wrenn.NewID(wrenn.PrefixSandbox), TeamID: f.admin.TeamID, Template: "minimal", HostID: hostID,
			Status: wrenn.StatusRunning, VCPUs: 1, MemoryMB: 256, CreatedAt: f.clock.Now(), LastUpdated: f.clock.Now()}
		if err := f.db.CreateSandbox(ctx, sb); err != nil {
			t.Fatal(err)
		}
		if i != 1 {
			on = append(on, sb.ID)
		}
	}
	_, preview, err := f.svc.DeletePreview(ctx, f.admin, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Delete(ctx, f.admin, h.ID, false); err == nil || len(ended) != 0 {
		t.Fatalf("a delete without force of a busy host: %v, ended %v", err, ended)
	}
	stopped, err := f.svc.Delete(ctx, f.admin, h.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(on)
	for what, got := range map[string][]string{"preview": preview, "ended": ended, "recorded stopped": stopped} {
		got = slices.Sorted(slices.Values(got))
		if !slices.Equal(got, on) {
			t.Fatalf("%s: %v, want the host's sandboxes %v", what, got, on)
		}
	}
}
