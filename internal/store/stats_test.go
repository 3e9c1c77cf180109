package store_test

import (
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store"
)

// TestTeamSamples: a step records each team with running or pending
// sandboxes once, however often it is recorded; its share goes to the
// day's usage once; samples read back by time, peaks are the largest,
// pruning keeps the daily usage.
func TestTeamSamples(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		_, a := mustAccount(t, db, "a@example.com", at(0))
		_, b := mustAccount(t, db, "b@example.com", at(0))
		_, idle := mustAccount(t, db, "idle@example.com", at(0))
		mustSandbox(t, db, a.ID, wrenn.StatusRunning, at(0))
		mustSandbox(t, db, a.ID, wrenn.StatusPending, at(0))
		mustSandbox(t, db, a.ID, wrenn.StatusPaused, at(0))
		mustSandbox(t, db, b.ID, wrenn.StatusRunning, at(0))
		mustSandbox(t, db, idle.ID, wrenn.StatusStopped, at(0))

		day := time.Date(2026, 12, 7, 23, 58, 0, 0, time.UTC)
		n, err := db.RecordTeamSamples(ctx, day, time.Minute)
		mustNoError(t, "record", err)
		mustEqual(t, "teams recorded", n, 2)
		// Another control plane recording the same step adds nothing.
		n, err = db.RecordTeamSamples(ctx, day, time.Minute)
		mustNoError(t, "record again", err)
		mustEqual(t, "teams recorded again", n, 0)
		_, err = db.RecordTeamSamples(ctx, day.Add(time.Minute), time.Minute)
		mustNoError(t, "record next", err)
		// The next day: b's sandbox is gone.
		sbs, err := db.ListSandboxes(ctx, b.ID)
		mustNoError(t, "list", err)
		mustNoError(t, "delete", db.DeleteSandbox(ctx, b.ID, sbs[0].ID))
		_, err = db.RecordTeamSamples(ctx, day.Add(2*time.Minute), time.Minute)
		mustNoError(t, "record next day", err)

		got, err := db.TeamSamples(ctx, a.ID, day, day.Add(time.Hour))
		mustNoError(t, "samples", err)
		want := []wrenn.TeamSample{
			{At: day, Running: 2, VCPUs: 4, MemoryMB: 1024},
			{At: day.Add(time.Minute), Running: 2, VCPUs: 4, MemoryMB: 1024},
			{At: day.Add(2 * time.Minute), Running: 2, VCPUs: 4, MemoryMB: 1024},
		}
		mustEqual(t, "a's samples", got, want)
		got, err = db.TeamSamples(ctx, a.ID, day.Add(time.Minute), day.Add(2*time.Minute))
		mustNoError(t, "samples", err)
		mustEqual(t, "a's samples in [1m, 2m)", got, want[1:2])
		got, err = db.TeamSamples(ctx, idle.ID, day, day.Add(time.Hour))
		mustNoError(t, "idle samples", err)
		mustEqual(t, "idle team's samples", len(got), 0)

		peaks, err := db.TeamPeaks(ctx, b.ID, day.Add(-time.Hour))
		mustNoError(t, "peaks", err)
		mustEqual(t, "b's peaks", peaks, wrenn.TeamSample{Running: 1, VCPUs: 2, MemoryMB: 512})
		peaks, err = db.TeamPeaks(ctx, idle.ID, day.Add(-time.Hour))
		mustNoError(t, "idle peaks", err)
		mustEqual(t, "idle team's peaks", peaks, wrenn.TeamSample{})

		usage, err := db.TeamDailyUsage(ctx, a.ID, "2026-12-01", "2026-12-31")
		mustNoError(t, "usage", err)
		mustEqual(t, "a's usage", usage, []wrenn.DailyUsage{
			{Day: "2026-12-07", CPUMinutes: 8, RAMMBMinutes: 2048},
			{Day: "2026-12-08", CPUMinutes: 4, RAMMBMinutes: 1024},
		})
		usage, err = db.TeamDailyUsage(ctx, b.ID, "2026-12-08", "2026-12-08")
		mustNoError(t, "usage", err)
		mustEqual(t, "b's usage on the 8th", len(usage), 0)

		mustNoError(t, "prune", db.PruneTeamSamples(ctx, day.Add(2*time.Minute)))
		got, err = db.TeamSamples(ctx, a.ID, day, day.Add(time.Hour))
		mustNoError(t, "samples", err)
		mustEqual(t, "a's samples after pruning", got, want[2:])
		usage, err = db.TeamDailyUsage(ctx, a.ID, "2026-12-07", "2026-12-07")
		mustNoError(t, "usage", err)
		mustEqual(t, "a's usage after pruning", len(usage), 1)
	})
}
