package store_test

import (
	"sync"
	"testing"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store"
)

func newSandbox(teamID string, vcpus, memoryMB int) *wrenn.Sandbox {
	return &wrenn.Sandbox{ID: wrenn.NewID(wrenn.PrefixSandbox), TeamID: teamID, Template: "minimal",
		Status: wrenn.StatusPending, VCPUs: vcpus, MemoryMB: memoryMB, CreatedAt: base, LastUpdated: base}
}

func TestTeamQuota(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		_, team := mustAccount(t, db, "q@example.com", base)

		got, err := db.TeamQuota(ctx, team.ID)
		mustNoError(t, "quota of a new team", err)
		mustEqual(t, "quota of a new team", got, wrenn.QuotaOverride{})

		two, zero, snap := 2, 0, int64(1<<40) // a BIGINT on PostgreSQL
		o := wrenn.QuotaOverride{Sandboxes: &two, MemoryMB: &zero, SnapshotMB: &snap}
		mustNoError(t, "set quota", db.SetTeamQuota(ctx, team.ID, o, at(1)))
		got, err = db.TeamQuota(ctx, team.ID)
		mustNoError(t, "quota", err)
		mustEqual(t, "quota", got, o)

		eight := 8
		o = wrenn.QuotaOverride{VCPUs: &eight}
		mustNoError(t, "replace quota", db.SetTeamQuota(ctx, team.ID, o, at(2)))
		got, err = db.TeamQuota(ctx, team.ID)
		mustNoError(t, "quota", err)
		mustEqual(t, "replaced quota", got, o)

		mustNoError(t, "clear quota", db.SetTeamQuota(ctx, team.ID, wrenn.QuotaOverride{}, at(3)))
		mustCount(t, db, map[string]int{"team_quotas": 0})

		wantError(t, db.SetTeamQuota(ctx, "team-nope", o, at(4)), wrenn.ENotFound, "team not found")
		_, err = db.TeamQuota(ctx, "team-nope")
		wantError(t, err, wrenn.ENotFound, "team not found")
	})
}

// TestTeamUsage: running and pending sandboxes count their sizes, paused
// ones their memory as snapshot storage, with the team's snapshot
// templates; other teams, stopped and failed sandboxes and base templates
// do not count.
func TestTeamUsage(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		_, team := mustAccount(t, db, "u@example.com", base)
		_, other := mustAccount(t, db, "o@example.com", base)

		u, err := db.TeamUsage(ctx, team.ID)
		mustNoError(t, "usage", err)
		mustEqual(t, "usage of an empty team", u, wrenn.Usage{})

		for _, st := range []wrenn.SandboxStatus{wrenn.StatusPending, wrenn.StatusRunning, wrenn.StatusPaused,
			wrenn.StatusStopped, wrenn.StatusError} {
			mustSandbox(t, db, team.ID, st, base) // 2 vCPUs, 512 MiB each
		}
		mustSandbox(t, db, other.ID, wrenn.StatusRunning, base)
		mustNoError(t, "snapshot", db.PutTemplate(ctx, &wrenn.Template{Name: "s", TeamID: team.ID,
			Type: wrenn.TemplateSnapshot, SizeBytes: 3 << 30, CreatedAt: base}))
		mustNoError(t, "other's snapshot", db.PutTemplate(ctx, &wrenn.Template{Name: "s", TeamID: other.ID,
			Type: wrenn.TemplateSnapshot, SizeBytes: 1 << 30, CreatedAt: base}))
		mustNoError(t, "base", db.PutTemplate(ctx, &wrenn.Template{Name: "b", Type: wrenn.TemplateBase,
			SizeBytes: 1 << 30, CreatedAt: base}))

		u, err = db.TeamUsage(ctx, team.ID)
		mustNoError(t, "usage", err)
		mustEqual(t, "usage", u, wrenn.Usage{Sandboxes: 2, VCPUs: 4, MemoryMB: 1024, SnapshotBytes: 3<<30 + 512*wrenn.MiB})
	})
}

func TestCreateSandboxWithin(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		_, team := mustAccount(t, db, "c@example.com", base)
		def := wrenn.Quota{Sandboxes: 2, VCPUs: 3, MemoryMB: 2048}

		mustNoError(t, "first", db.CreateSandboxWithin(ctx, newSandbox(team.ID, 2, 512), def))
		wantError(t, db.CreateSandboxWithin(ctx, newSandbox(team.ID, 2, 512), def), wrenn.EQuotaExceeded,
			"team quota: 3 vCPUs (2 in use, 2 more asked)")
		wantError(t, db.CreateSandboxWithin(ctx, newSandbox(team.ID, 1, 2000), def), wrenn.EQuotaExceeded,
			"team quota: 2048 MiB of memory (512 MiB in use, 2000 MiB more asked)")
		mustNoError(t, "second", db.CreateSandboxWithin(ctx, newSandbox(team.ID, 1, 512), def))
		wantError(t, db.CreateSandboxWithin(ctx, newSandbox(team.ID, 1, 128), def), wrenn.EQuotaExceeded,
			"team quota: 2 running sandboxes (2 running now)")
		mustCount(t, db, map[string]int{"sandboxes": 2})

		// The team's own quota wins over the default.
		three := 3
		mustNoError(t, "set quota", db.SetTeamQuota(ctx, team.ID, wrenn.QuotaOverride{Sandboxes: &three}, base))
		wantError(t, db.CreateSandboxWithin(ctx, newSandbox(team.ID, 1, 128), def), wrenn.EQuotaExceeded,
			"team quota: 3 vCPUs (3 in use, 1 more asked)")
		zero := 0
		mustNoError(t, "set quota", db.SetTeamQuota(ctx, team.ID, wrenn.QuotaOverride{Sandboxes: &three, VCPUs: &zero}, base))
		mustNoError(t, "third", db.CreateSandboxWithin(ctx, newSandbox(team.ID, 1, 128), def))

		sb := newSandbox("team-nope", 1, 128)
		wantError(t, db.CreateSandboxWithin(ctx, sb, def), wrenn.ENotFound, "team not found")
	})
}

// TestCreateSandboxWithinRace: many creates at once, of one team, admit
// exactly as many sandboxes as the quota allows.
func TestCreateSandboxWithinRace(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		_, team := mustAccount(t, db, "r@example.com", base)
		def := wrenn.Quota{Sandboxes: 3}
		const tries = 12
		var wg sync.WaitGroup
		errs := make(chan error, tries)
		for range tries {
			wg.Go(func() { errs <- db.CreateSandboxWithin(ctx, newSandbox(team.ID, 1, 128), def) })
		}
		wg.Wait()
		close(errs)
		admitted := 0
		for err := range errs {
			switch wrenn.ErrorCode(err) {
			case "":
				admitted++
			case wrenn.EQuotaExceeded:
			default:
				t.Errorf("create: %v", err)
			}
		}
		if admitted != 3 {
			t.Errorf("%d of %d creates admitted, want 3", admitted, tries)
		}
		mustCount(t, db, map[string]int{"sandboxes": 3})
	})
}

func TestResumeSandboxWithin(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		_, team := mustAccount(t, db, "p@example.com", base)
		def := wrenn.Quota{Sandboxes: 1}
		paused := mustSandbox(t, db, team.ID, wrenn.StatusPaused, base)
		running := mustSandbox(t, db, team.ID, wrenn.StatusRunning, base)

		_, err := db.ResumeSandboxWithin(ctx, team.ID, paused.ID, def, at(1))
		wantError(t, err, wrenn.EQuotaExceeded, "team quota: 1 running sandboxes (1 running now)")
		_, err = db.ResumeSandboxWithin(ctx, team.ID, running.ID, wrenn.Quota{}, at(1))
		wantError(t, err, wrenn.EConflict, "sandbox is running")
		_, err = db.ResumeSandboxWithin(ctx, team.ID, "sb-nope", def, at(1))
		wantError(t, err, wrenn.ENotFound, "sandbox not found")

		mustNoError(t, "delete", db.DeleteSandbox(ctx, team.ID, running.ID))
		sb, err := db.ResumeSandboxWithin(ctx, team.ID, paused.ID, def, at(1))
		mustNoError(t, "resume", err)
		if sb.Status != wrenn.StatusRunning || !sb.LastUpdated.Equal(at(1).UTC().Truncate(1000)) {
			t.Errorf("resumed sandbox: %+v", sb)
		}
	})
}
