package store_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store"
)

// mustHost records a pending host of type typ (team for BYOC) with a
// registration token whose hash is that of token.
func mustHost(t *testing.T, db *store.DB, typ wrenn.HostType, teamID, createdBy, token string, created time.Time) *wrenn.Host {
	t.Helper()
	sum := sha256.Sum256([]byte(token))
	exp := created.Add(time.Hour)
	h := &wrenn.Host{ID: wrenn.NewID(wrenn.PrefixHost), Type: typ, TeamID: teamID, Provider: "hetzner",
		Status: wrenn.HostPending, CreatedBy: createdBy, CreatedAt: created, UpdatedAt: created,
		TokenHash: sum[:], TokenExpiresAt: &exp}
	mustNoError(t, "create host", db.CreateHost(t.Context(), h))
	return h
}

func hashOf(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// TestHostRecord checks that a host reads back as written, nullable specs
// and all, and that only the token's hash finds it.
func TestHostRecord(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		u, team := mustAccount(t, db, "admin@example.com", base)
		h := mustHost(t, db, wrenn.HostBYOC, team.ID, u.ID, "tok-1", base)
		if h.CreatedAt.Location() != time.UTC || h.CreatedAt.Nanosecond()%1000 != 0 || h.Tags == nil {
			t.Errorf("CreateHost left %+v, want times normalised and tags empty, not nil", h)
		}
		got, err := db.GetHost(ctx, h.ID)
		mustNoError(t, "get host", err)
		mustEqual(t, "host read back", got, h)
		if got.Arch != "" || got.CPUCores != nil || got.MemoryMB != nil || got.DiskGB != nil || got.Address != "" || got.LastHeartbeatAt != nil {
			t.Errorf("a pending host has specs: %+v", got)
		}

		// Every field, specs included, round-trips.
		cores, mem, disk := 8, 32768, 500
		beat := at(time.Minute)
		full := &wrenn.Host{ID: wrenn.NewID(wrenn.PrefixHost), Type: wrenn.HostRegular, Provider: "aws", AvailabilityZone: "eu-west",
			Arch: "x86_64", CPUCores: &cores, MemoryMB: &mem, DiskGB: &disk, Address: "10.0.0.5:9090",
			Status: wrenn.HostOnline, Draining: true, LastHeartbeatAt: &beat, CreatedBy: u.ID, CreatedAt: at(time.Second), UpdatedAt: at(time.Minute)}
		mustNoError(t, "create full host", db.CreateHost(ctx, full))
		got, err = db.GetHost(ctx, full.ID)
		mustNoError(t, "get full host", err)
		mustEqual(t, "full host read back", got, full)
		if got.ShownStatus() != wrenn.HostDraining {
			t.Errorf("an online draining host shows %s", got.ShownStatus())
		}

		byHash, err := db.HostByTokenHash(ctx, hashOf("tok-1"))
		mustNoError(t, "host by token hash", err)
		mustEqual(t, "host by token hash", byHash, h)
		for _, hash := range [][]byte{hashOf("tok-2"), []byte("tok-1"), nil} {
			_, err = db.HostByTokenHash(ctx, hash)
			wantError(t, err, wrenn.ENotFound, "host not found")
		}
		_, err = db.GetHost(ctx, wrenn.NewID(wrenn.PrefixHost))
		wantError(t, err, wrenn.ENotFound, "host not found")

		// A clashing ID or token hash writes nothing.
		dup := *h
		dup.TokenHash = hashOf("tok-other")
		wantError(t, db.CreateHost(ctx, &dup), wrenn.EConflict, "host already exists")
		dup.ID = wrenn.NewID(wrenn.PrefixHost)
		dup.TokenHash = hashOf("tok-1")
		wantError(t, db.CreateHost(ctx, &dup), wrenn.EConflict, "host already exists")
		dup.TokenHash, dup.TeamID = hashOf("tok-3"), "team-none"
		wantError(t, db.CreateHost(ctx, &dup), wrenn.EInvalid, "team_id names no team")
		mustCount(t, db, map[string]int{"hosts": 2})
	})
}

func TestListHosts(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		u, a := mustAccount(t, db, "a@example.com", base)
		_, b := mustAccount(t, db, "b@example.com", base)
		regular := mustHost(t, db, wrenn.HostRegular, "", u.ID, "t1", at(1*time.Second))
		byocA := mustHost(t, db, wrenn.HostBYOC, a.ID, u.ID, "t2", at(2*time.Second))
		byocB := mustHost(t, db, wrenn.HostBYOC, b.ID, u.ID, "t3", at(3*time.Second))
		byocA2 := mustHost(t, db, wrenn.HostBYOC, a.ID, u.ID, "t4", at(4*time.Second))
		mustNoError(t, "tag", db.AddHostTag(ctx, byocA.ID, "gpu", 10, at(time.Minute)))
		mustNoError(t, "tag", db.AddHostTag(ctx, byocA.ID, "eu", 10, at(time.Minute)))
		mustNoError(t, "tag", db.AddHostTag(ctx, byocB.ID, "gpu", 10, at(time.Minute)))
		for _, h := range []*wrenn.Host{byocA, byocB} {
			fresh, err := db.GetHost(ctx, h.ID)
			mustNoError(t, "get host", err)
			*h = *fresh
		}
		if got := byocA.Tags; len(got) != 2 || got[0] != "eu" || got[1] != "gpu" {
			t.Fatalf("tags %v, want [eu gpu]", got)
		}

		all, err := db.ListHosts(ctx)
		mustNoError(t, "list hosts", err)
		mustEqual(t, "every host, oldest first", all, []*wrenn.Host{regular, byocA, byocB, byocA2})
		team, err := db.ListTeamHosts(ctx, a.ID)
		mustNoError(t, "list team hosts", err)
		mustEqual(t, "team a's hosts", team, []*wrenn.Host{byocA, byocA2})
		none, err := db.ListTeamHosts(ctx, "team-none")
		mustNoError(t, "list no team's hosts", err)
		mustEqual(t, "no team's hosts", none, []*wrenn.Host{})
	})
}

// TestHostToken checks that a new token replaces the old one, only while
// the host is pending.
func TestHostToken(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		u, _ := mustAccount(t, db, "a@example.com", base)
		h := mustHost(t, db, wrenn.HostRegular, "", u.ID, "old", base)
		exp := at(2 * time.Hour)
		got, err := db.SetHostToken(ctx, h.ID, hashOf("new"), exp, at(time.Hour))
		mustNoError(t, "set host token", err)
		if !bytes.Equal(got.TokenHash, hashOf("new")) || !got.TokenExpiresAt.Equal(exp.Truncate(time.Microsecond)) ||
			!got.UpdatedAt.Equal(at(time.Hour).Truncate(time.Microsecond)) {
			t.Errorf("after SetHostToken: %+v", got)
		}
		_, err = db.HostByTokenHash(ctx, hashOf("old"))
		wantError(t, err, wrenn.ENotFound, "host not found")
		byNew, err := db.HostByTokenHash(ctx, hashOf("new"))
		mustNoError(t, "host by new token", err)
		mustEqual(t, "host by new token", byNew, got)

		_, err = db.SetHostToken(ctx, wrenn.NewID(wrenn.PrefixHost), hashOf("x"), exp, base)
		wantError(t, err, wrenn.ENotFound, "host not found")

		online := &wrenn.Host{ID: wrenn.NewID(wrenn.PrefixHost), Type: wrenn.HostRegular, Status: wrenn.HostOnline,
			CreatedBy: u.ID, CreatedAt: base, UpdatedAt: base}
		mustNoError(t, "create online host", db.CreateHost(ctx, online))
		_, err = db.SetHostToken(ctx, online.ID, hashOf("late"), exp, base)
		wantError(t, err, wrenn.EConflict, "host is online: only a pending host is given a registration token")
		_, err = db.HostByTokenHash(ctx, hashOf("late"))
		wantError(t, err, wrenn.ENotFound, "host not found")
	})
}

func TestHostTags(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		u, _ := mustAccount(t, db, "a@example.com", base)
		h := mustHost(t, db, wrenn.HostRegular, "", u.ID, "tok", base)
		for _, tag := range []string{"b", "a", "b", "c"} {
			mustNoError(t, "add "+tag, db.AddHostTag(ctx, h.ID, tag, 3, at(time.Minute)))
		}
		wantError(t, db.AddHostTag(ctx, h.ID, "d", 3, at(time.Minute)), wrenn.EInvalid, "a host has at most 3 tags")
		mustNoError(t, "re-add at the limit", db.AddHostTag(ctx, h.ID, "a", 3, at(time.Minute)))
		tags, err := db.HostTags(ctx, h.ID)
		mustNoError(t, "host tags", err)
		mustEqual(t, "tags", tags, []string{"a", "b", "c"})

		mustNoError(t, "remove b", db.RemoveHostTag(ctx, h.ID, "b", at(time.Hour)))
		mustNoError(t, "remove b again", db.RemoveHostTag(ctx, h.ID, "b", at(2*time.Hour)))
		got, err := db.GetHost(ctx, h.ID)
		mustNoError(t, "get host", err)
		mustEqual(t, "tags after remove", got.Tags, []string{"a", "c"})
		if want := at(time.Hour).UTC().Truncate(time.Microsecond); !got.UpdatedAt.Equal(want) {
			t.Errorf("updated_at %v, want %v (a removal that changed nothing leaves it)", got.UpdatedAt, want)
		}

		missing := wrenn.NewID(wrenn.PrefixHost)
		wantError(t, db.AddHostTag(ctx, missing, "a", 3, base), wrenn.ENotFound, "host not found")
		wantError(t, db.RemoveHostTag(ctx, missing, "a", base), wrenn.ENotFound, "host not found")
		tags, err = db.HostTags(ctx, missing)
		mustNoError(t, "tags of no host", err)
		mustEqual(t, "tags of no host", tags, []string{})
	})
}

func TestHostDraining(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		u, _ := mustAccount(t, db, "a@example.com", base)
		h := mustHost(t, db, wrenn.HostRegular, "", u.ID, "tok", base)
		got, err := db.SetHostDraining(ctx, h.ID, true, at(time.Minute))
		mustNoError(t, "drain", err)
		if !got.Draining || got.Status != wrenn.HostPending || got.ShownStatus() != wrenn.HostPending {
			t.Errorf("drained pending host: %+v", got)
		}
		got, err = db.SetHostDraining(ctx, h.ID, false, at(time.Hour))
		mustNoError(t, "undrain", err)
		if got.Draining {
			t.Errorf("undrained host: %+v", got)
		}
		_, err = db.SetHostDraining(ctx, wrenn.NewID(wrenn.PrefixHost), true, base)
		wantError(t, err, wrenn.ENotFound, "host not found")
	})
}

// TestDeleteHost checks that a host with sandboxes on it is kept unless
// forced, and that a forced delete stops exactly those sandboxes.
func TestDeleteHost(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		u, team := mustAccount(t, db, "a@example.com", base)
		h := mustHost(t, db, wrenn.HostRegular, "", u.ID, "tok", base)
		other := mustHost(t, db, wrenn.HostRegular, "", u.ID, "tok2", base)
		mustNoError(t, "tag", db.AddHostTag(ctx, h.ID, "gpu", 10, base))

		// Nothing lives on a new host.
		ids, err := db.HostSandboxIDs(ctx, h.ID)
		mustNoError(t, "host sandboxes", err)
		mustEqual(t, "sandboxes of a new host", ids, []string{})

		on := func(hostID string, status wrenn.SandboxStatus, d time.Duration) *wrenn.Sandbox {
			sb := mustSandbox(t, db, team.ID, status, at(d))
			sb.HostID = hostID
			mustNoError(t, "place sandbox", db.UpdateSandbox(ctx, sb))
			return sb
		}
		running := on(h.ID, wrenn.StatusRunning, time.Second)
		paused := on(h.ID, wrenn.StatusPaused, 2*time.Second)
		failed := on(h.ID, wrenn.StatusError, 3*time.Second)
		stopped := on(h.ID, wrenn.StatusStopped, 4*time.Second)
		elsewhere := on(other.ID, wrenn.StatusRunning, 5*time.Second)
		local := on("", wrenn.StatusRunning, 6*time.Second) // the local agent's, recorded before hosts
		want := []string{running.ID, paused.ID, failed.ID}

		ids, err = db.HostSandboxIDs(ctx, h.ID)
		mustNoError(t, "host sandboxes", err)
		mustEqual(t, "sandboxes on the host", ids, want)

		_, err = db.DeleteHost(ctx, h.ID, false, at(time.Hour))
		wantError(t, err, wrenn.EHostHasSandboxes, "host has 3 active sandboxes; delete with force=true to destroy them with it")
		busy, ok := err.(*wrenn.HostBusyError)
		if !ok {
			t.Fatalf("error %T, want *wrenn.HostBusyError", err)
		}
		mustEqual(t, "sandboxes refusing the delete", busy.SandboxIDs, want)
		if _, err := db.GetHost(ctx, h.ID); err != nil {
			t.Fatalf("a refused delete removed the host: %v", err)
		}

		ended, err := db.DeleteHost(ctx, h.ID, true, at(time.Hour))
		mustNoError(t, "forced delete", err)
		mustEqual(t, "sandboxes a forced delete ended", ended, want)
		_, err = db.GetHost(ctx, h.ID)
		wantError(t, err, wrenn.ENotFound, "host not found")
		mustCount(t, db, map[string]int{"hosts": 1, "host_tags": 0})
		for _, sb := range []*wrenn.Sandbox{running, paused, failed, stopped, elsewhere, local} {
			got, err := db.GetSandbox(ctx, team.ID, sb.ID)
			mustNoError(t, "get sandbox", err)
			wantStatus := sb.Status
			if sb.HostID == h.ID {
				wantStatus = wrenn.StatusStopped
			}
			if got.Status != wantStatus {
				t.Errorf("sandbox %s was %s, is %s after the delete; want %s", sb.ID, sb.Status, got.Status, wantStatus)
			}
		}

		// A host with nothing on it goes without force; an unknown one is not found.
		ended, err = db.DeleteHost(ctx, other.ID, false, at(time.Hour))
		if err == nil {
			t.Fatalf("deleted a host with a running sandbox, ended %v", ended)
		}
		mustNoError(t, "stop the last sandbox", db.DeleteSandbox(ctx, team.ID, elsewhere.ID))
		ended, err = db.DeleteHost(ctx, other.ID, false, at(time.Hour))
		mustNoError(t, "delete an empty host", err)
		mustEqual(t, "sandboxes of an empty host's delete", ended, []string{})
		_, err = db.DeleteHost(ctx, other.ID, true, at(time.Hour))
		wantError(t, err, wrenn.ENotFound, "host not found")
	})
}

// TestFirstAccountAdmin checks that a store's first account, and only it,
// is made a platform admin, even when several are made at once.
func TestFirstAccountAdmin(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		const n = 8
		users := make([]*wrenn.User, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				users[i] = &wrenn.User{ID: wrenn.NewID(wrenn.PrefixUser), Email: fmt.Sprintf("u%d@example.com", i), PasswordHash: "h", CreatedAt: base}
				tm := &wrenn.Team{ID: wrenn.NewID(wrenn.PrefixTeam), Name: "t", CreatedAt: base}
				if err := db.CreateAccount(ctx, users[i], tm); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		admins := 0
		for _, u := range users {
			stored, err := db.IsAdmin(ctx, u.ID)
			mustNoError(t, "is admin", err)
			if stored != u.IsAdmin {
				t.Errorf("%s: CreateAccount said admin=%v, the store has %v", u.Email, u.IsAdmin, stored)
			}
			if stored {
				admins++
			}
		}
		if admins != 1 {
			t.Fatalf("%d of %d accounts made at once are admins, want 1", admins, n)
		}

		// A later account is an admin only when asked for.
		asked := &wrenn.User{ID: wrenn.NewID(wrenn.PrefixUser), Email: "asked@example.com", PasswordHash: "h", IsAdmin: true, CreatedAt: base}
		mustNoError(t, "create admin", db.CreateAccount(ctx, asked, &wrenn.Team{ID: wrenn.NewID(wrenn.PrefixTeam), Name: "t", CreatedAt: base}))
		if ok, _ := db.IsAdmin(ctx, asked.ID); !ok || !asked.IsAdmin {
			t.Errorf("an account made as admin is not one")
		}
		if ok, err := db.IsAdmin(ctx, "usr-nobody"); ok || err != nil {
			t.Errorf("IsAdmin(unknown) = %v, %v", ok, err)
		}
	})
}

func TestSetAdmin(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		first, _ := mustAccount(t, db, "first@example.com", base)
		bob, _ := mustAccount(t, db, "Bob@Example.com", base)
		if !first.IsAdmin || bob.IsAdmin {
			t.Fatalf("first admin=%v, second admin=%v; want true, false", first.IsAdmin, bob.IsAdmin)
		}
		got, err := db.SetAdmin(ctx, "BOB@example.com", true)
		mustNoError(t, "promote", err)
		bob.IsAdmin = true
		mustEqual(t, "promoted user", got, bob)
		byEmail, err := db.UserByEmail(ctx, "bob@example.com")
		mustNoError(t, "user by email", err)
		mustEqual(t, "promoted user by email", byEmail, bob)

		got, err = db.SetAdmin(ctx, "first@example.com", false)
		mustNoError(t, "demote", err)
		if got.IsAdmin {
			t.Error("demoted user is still an admin")
		}
		if ok, _ := db.IsAdmin(ctx, first.ID); ok {
			t.Error("demoted user is still an admin in the store")
		}
		_, err = db.SetAdmin(ctx, "nobody@example.com", true)
		wantError(t, err, wrenn.ENotFound, "user not found")
	})
}

func TestMemberRole(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		alice, aliceTeam := mustAccount(t, db, "alice@example.com", base)
		_, bobTeam := mustAccount(t, db, "bob@example.com", base)
		shared := &wrenn.Team{ID: wrenn.NewID(wrenn.PrefixTeam), Name: "shared", CreatedAt: base}
		mustNoError(t, "add team", db.AddTeam(ctx, shared, alice.ID, "member", base))
		for _, tc := range []struct {
			team, want string
		}{{aliceTeam.ID, wrenn.RoleOwner}, {shared.ID, "member"}, {bobTeam.ID, ""}, {"team-none", ""}} {
			got, err := db.MemberRole(ctx, alice.ID, tc.team)
			mustNoError(t, "member role", err)
			if got != tc.want {
				t.Errorf("role in %s = %q, want %q", tc.team, got, tc.want)
			}
		}
	})
}

// TestAdminMigration: on a store that has accounts when migration 6 comes,
// its earliest user becomes the platform admin, and no one else.
func TestAdminMigration(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		mustNoError(t, "migrate down to 5", db.MigrateTo(ctx, 5))
		ids := map[string]string{}
		for i, email := range []string{"later@example.com", "earliest@example.com", "latest@example.com"} {
			created := map[int]time.Duration{0: time.Hour, 1: 0, 2: 2 * time.Hour}[i]
			ids[email] = wrenn.NewID(wrenn.PrefixUser)
			mustNoError(t, "insert user", db.ExecSQL(ctx, `INSERT INTO users (id, email, email_lower, password_hash, created_at) VALUES (?, ?, ?, ?, ?)`,
				ids[email], email, email, "h", timeArg(db, at(created))))
		}
		mustNoError(t, "migrate up", db.MigrateTo(ctx, 6))
		for email, id := range ids {
			admin, err := db.IsAdmin(ctx, id)
			mustNoError(t, "is admin", err)
			if want := email == "earliest@example.com"; admin != want {
				t.Errorf("%s: admin %v, want %v", email, admin, want)
			}
		}
		// A later account is not the first: no admin.
		u, _ := mustAccount(t, db, "new@example.com", at(3*time.Hour))
		if u.IsAdmin {
			t.Error("an account made after the migration became an admin")
		}
	})
}

// timeArg is a timestamp as the engine stores it, for raw inserts.
func timeArg(db *store.DB, t time.Time) any {
	if db.Engine() == store.EngineSQLite {
		return t.UTC().Format("2006-01-02T15:04:05.000000Z")
	}
	return t
}
