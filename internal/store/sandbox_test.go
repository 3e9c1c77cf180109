package store_test

import (
	"cmp"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store"
)

func TestSandboxes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		_, teamA := mustAccount(t, db, "alice@example.com", base)
		_, teamB := mustAccount(t, db, "bob@example.com", base)
		sb1 := mustSandbox(t, db, teamA.ID, wrenn.StatusPending, at(0))
		sb2 := mustSandbox(t, db, teamA.ID, wrenn.StatusRunning, at(time.Second))
		sb3 := mustSandbox(t, db, teamB.ID, wrenn.StatusPending, at(2*time.Second))

		dup := *sb1
		wantError(t, db.CreateSandbox(ctx, &dup), wrenn.EConflict, "")

		t.Run("get", func(t *testing.T) {
			tests := []struct {
				name, team, id string
				want           *wrenn.Sandbox // nil: not found
			}{
				{"own", teamA.ID, sb1.ID, sb1},
				{"other team's", teamB.ID, sb1.ID, nil},
				{"unknown", teamA.ID, "sb-none", nil},
			}
			for _, tc := range tests {
				got, err := db.GetSandbox(ctx, tc.team, tc.id)
				if tc.want == nil {
					wantError(t, err, wrenn.ENotFound, "sandbox not found")
					continue
				}
				mustNoError(t, tc.name, err)
				mustEqual(t, tc.name, got, tc.want)
			}
		})

		t.Run("list", func(t *testing.T) {
			tests := []struct {
				team string
				want []*wrenn.Sandbox
			}{
				{teamA.ID, []*wrenn.Sandbox{sb2, sb1}},
				{teamB.ID, []*wrenn.Sandbox{sb3}},
				{"team-none", []*wrenn.Sandbox{}},
			}
			for _, tc := range tests {
				got, err := db.ListSandboxes(ctx, tc.team)
				mustNoError(t, "list "+tc.team, err)
				if got == nil {
					t.Fatal("ListSandboxes returned nil, want an empty slice")
				}
				mustEqual(t, "sandboxes of "+tc.team, got, tc.want)
			}
		})

		t.Run("update", func(t *testing.T) {
			started, active := at(time.Minute), at(2*time.Minute)
			upd := *sb1
			upd.Status = wrenn.StatusRunning
			upd.GuestIP, upd.HostIP, upd.HostID = "10.11.0.2", "10.12.0.1", "host-1"
			upd.StartedAt, upd.LastActiveAt = &started, &active
			upd.LastUpdated = at(3 * time.Minute)
			// Immutable fields are not written, whatever the struct says.
			upd.Template, upd.VCPUs, upd.MemoryMB, upd.TimeoutSec, upd.CreatedAt = "other", 99, 99, 99, at(time.Hour)
			upd.Network = wrenn.Network{Internet: true}
			mustNoError(t, "update", db.UpdateSandbox(ctx, &upd))

			want := upd
			want.Template, want.VCPUs, want.MemoryMB, want.TimeoutSec, want.CreatedAt = sb1.Template, sb1.VCPUs, sb1.MemoryMB, sb1.TimeoutSec, sb1.CreatedAt
			want.Network = sb1.Network
			got, err := db.GetSandbox(ctx, teamA.ID, sb1.ID)
			mustNoError(t, "get", err)
			mustEqual(t, "updated sandbox", got, &want)
			*sb1 = want

			// Clearing optional fields writes NULL.
			cleared := want
			cleared.StartedAt, cleared.LastActiveAt = nil, nil
			mustNoError(t, "update", db.UpdateSandbox(ctx, &cleared))
			got, err = db.GetSandbox(ctx, teamA.ID, sb1.ID)
			mustNoError(t, "get", err)
			mustEqual(t, "cleared sandbox", got, &cleared)
			mustNoError(t, "restore", db.UpdateSandbox(ctx, sb1))

			other := *sb1
			other.TeamID = teamB.ID
			wantError(t, db.UpdateSandbox(ctx, &other), wrenn.ENotFound, "sandbox not found")
		})

		t.Run("touch", func(t *testing.T) {
			active := at(time.Hour)
			mustNoError(t, "touch", db.TouchSandbox(ctx, teamA.ID, sb2.ID, active))
			got, err := db.GetSandbox(ctx, teamA.ID, sb2.ID)
			mustNoError(t, "get", err)
			want := active.UTC().Truncate(time.Microsecond)
			if got.LastActiveAt == nil || *got.LastActiveAt != want {
				t.Errorf("last active = %v, want %v", got.LastActiveAt, want)
			}
			sb2.LastActiveAt = &want
			wantError(t, db.TouchSandbox(ctx, teamB.ID, sb2.ID, active), wrenn.ENotFound, "sandbox not found")
		})

		t.Run("by status", func(t *testing.T) {
			tests := []struct {
				name     string
				statuses []wrenn.SandboxStatus
				want     []*wrenn.Sandbox
			}{
				{"none asked", nil, []*wrenn.Sandbox{}},
				{"running, across teams", []wrenn.SandboxStatus{wrenn.StatusRunning}, []*wrenn.Sandbox{sb1, sb2}},
				{"pending", []wrenn.SandboxStatus{wrenn.StatusPending}, []*wrenn.Sandbox{sb3}},
				{"several", []wrenn.SandboxStatus{wrenn.StatusPending, wrenn.StatusRunning}, []*wrenn.Sandbox{sb1, sb2, sb3}},
				{"none match", []wrenn.SandboxStatus{wrenn.StatusError}, []*wrenn.Sandbox{}},
			}
			for _, tc := range tests {
				got, err := db.SandboxesByStatus(ctx, tc.statuses...)
				mustNoError(t, tc.name, err)
				if got == nil {
					t.Fatalf("%s: SandboxesByStatus returned nil, want an empty slice", tc.name)
				}
				mustEqual(t, tc.name, got, tc.want)
			}
		})

		t.Run("delete", func(t *testing.T) {
			tests := []struct {
				name, team, id string
				wantCode       string
			}{
				{"other team's", teamB.ID, sb1.ID, wrenn.ENotFound},
				{"own", teamA.ID, sb1.ID, ""},
				{"already deleted", teamA.ID, sb1.ID, wrenn.ENotFound},
			}
			for _, tc := range tests {
				err := db.DeleteSandbox(ctx, tc.team, tc.id)
				if tc.wantCode == "" {
					mustNoError(t, tc.name, err)
				} else {
					wantError(t, err, tc.wantCode, "sandbox not found")
				}
			}
			_, err := db.GetSandbox(ctx, teamA.ID, sb1.ID)
			wantError(t, err, wrenn.ENotFound, "sandbox not found")
			got, err := db.ListSandboxes(ctx, teamA.ID)
			mustNoError(t, "list", err)
			mustEqual(t, "sandboxes after delete", got, []*wrenn.Sandbox{sb2})
		})
	})
}

func TestTransitionSandbox(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		_, teamA := mustAccount(t, db, "alice@example.com", base)
		_, teamB := mustAccount(t, db, "bob@example.com", base)
		running, paused := wrenn.StatusRunning, wrenn.StatusPaused
		tests := []struct {
			name     string
			start    wrenn.SandboxStatus
			team     string // "" means the sandbox's own team
			id       string // "" means the sandbox's own ID
			from     []wrenn.SandboxStatus
			to       wrenn.SandboxStatus
			wantCode string
			wantMsg  string
		}{
			{name: "running to paused", start: running, from: []wrenn.SandboxStatus{running}, to: paused},
			{name: "one of several", start: paused, from: []wrenn.SandboxStatus{running, paused}, to: wrenn.StatusStopped},
			{name: "same status", start: running, from: []wrenn.SandboxStatus{running}, to: running},
			{name: "wrong status", start: wrenn.StatusStopped, from: []wrenn.SandboxStatus{running, paused}, to: paused,
				wantCode: wrenn.EConflict, wantMsg: "sandbox is stopped"},
			{name: "no from", start: running, to: paused, wantCode: wrenn.EConflict, wantMsg: "sandbox is running"},
			{name: "other team's", start: running, team: teamB.ID, from: []wrenn.SandboxStatus{running}, to: paused,
				wantCode: wrenn.ENotFound, wantMsg: "sandbox not found"},
			{name: "unknown", start: running, id: "sb-none", from: []wrenn.SandboxStatus{running}, to: paused,
				wantCode: wrenn.ENotFound, wantMsg: "sandbox not found"},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				sb := mustSandbox(t, db, teamA.ID, tc.start, at(time.Duration(i)*time.Second))
				team, id := sb.TeamID, sb.ID
				if tc.team != "" {
					team = tc.team
				}
				if tc.id != "" {
					id = tc.id
				}
				when := at(time.Hour)
				got, err := db.TransitionSandbox(ctx, team, id, tc.from, tc.to, when)
				after, gerr := db.GetSandbox(ctx, teamA.ID, sb.ID)
				mustNoError(t, "get", gerr)
				if tc.wantCode != "" {
					wantError(t, err, tc.wantCode, tc.wantMsg)
					mustEqual(t, "sandbox after failed transition", after, sb)
					return
				}
				mustNoError(t, "transition", err)
				want := *sb
				want.Status = tc.to
				want.LastUpdated = when.UTC().Truncate(time.Microsecond)
				mustEqual(t, "returned sandbox", got, &want)
				mustEqual(t, "stored sandbox", after, &want)
			})
		}
	})
}

// TestTransitionSandboxRace races goroutines to pause one sandbox: exactly
// one must win and the rest see it paused.
func TestTransitionSandboxRace(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		_, team := mustAccount(t, db, "alice@example.com", base)
		sb := mustSandbox(t, db, team.ID, wrenn.StatusRunning, base)

		const racers = 16
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			errs  = make([]error, racers)
		)
		for i := range racers {
			wg.Go(func() {
				<-start
				_, errs[i] = db.TransitionSandbox(ctx, team.ID, sb.ID,
					[]wrenn.SandboxStatus{wrenn.StatusRunning}, wrenn.StatusPaused, at(time.Duration(i)*time.Second))
			})
		}
		close(start)
		wg.Wait()

		wins := 0
		for _, err := range errs {
			if err == nil {
				wins++
				continue
			}
			wantError(t, err, wrenn.EConflict, "sandbox is paused")
		}
		if wins != 1 {
			t.Fatalf("%d transitions won, want exactly 1", wins)
		}
		got, err := db.GetSandbox(ctx, team.ID, sb.ID)
		mustNoError(t, "get", err)
		if got.Status != wrenn.StatusPaused {
			t.Errorf("status = %s, want paused", got.Status)
		}
	})
}

// TestStopIdleSandbox: a running sandbox with no activity after the given
// time is stopped; one touched since, or not running, is left as it is.
func TestStopIdleSandbox(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		_, teamA := mustAccount(t, db, "alice@example.com", base)
		_, teamB := mustAccount(t, db, "bob@example.com", base)
		idleSince := at(time.Minute)
		tests := []struct {
			name     string
			status   wrenn.SandboxStatus
			active   *time.Time // last activity; nil: none, the creation counts
			team     string     // "" means the sandbox's own
			wantCode string
			wantMsg  string
		}{
			{name: "idle", status: wrenn.StatusRunning, active: new(at(30 * time.Second))},
			{name: "idle exactly since", status: wrenn.StatusRunning, active: new(idleSince)},
			{name: "never active", status: wrenn.StatusRunning},
			{name: "touched since", status: wrenn.StatusRunning, active: new(idleSince.Add(time.Microsecond)),
				wantCode: wrenn.EConflict, wantMsg: "sandbox has been active"},
			{name: "paused", status: wrenn.StatusPaused, active: new(at(30 * time.Second)),
				wantCode: wrenn.EConflict, wantMsg: "sandbox is paused"},
			{name: "other team's", status: wrenn.StatusRunning, team: teamB.ID,
				wantCode: wrenn.ENotFound, wantMsg: "sandbox not found"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				sb := mustSandbox(t, db, teamA.ID, tc.status, base)
				if tc.active != nil {
					mustNoError(t, "touch", db.TouchSandbox(ctx, teamA.ID, sb.ID, *tc.active))
				}
				before, err := db.GetSandbox(ctx, teamA.ID, sb.ID)
				mustNoError(t, "get", err)
				team := cmp.Or(tc.team, teamA.ID)
				when := at(time.Hour)
				got, err := db.StopIdleSandbox(ctx, team, sb.ID, idleSince, when)
				after, gerr := db.GetSandbox(ctx, teamA.ID, sb.ID)
				mustNoError(t, "get", gerr)
				if tc.wantCode != "" {
					wantError(t, err, tc.wantCode, tc.wantMsg)
					mustEqual(t, "sandbox after refusal", after, before)
					return
				}
				mustNoError(t, "stop idle", err)
				want := *before
				want.Status, want.LastUpdated = wrenn.StatusStopped, when.UTC().Truncate(time.Microsecond)
				mustEqual(t, "returned sandbox", got, &want)
				mustEqual(t, "stored sandbox", after, &want)
			})
		}
	})
}

// TestPauseIdleSandbox: an idle sandbox's timeout pauses it, recorded as
// paused by its timeout; any later transition forgets why.
func TestPauseIdleSandbox(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		_, team := mustAccount(t, db, "alice@example.com", base)
		idle := mustSandbox(t, db, team.ID, wrenn.StatusRunning, base)
		busy := mustSandbox(t, db, team.ID, wrenn.StatusRunning, base)
		mustNoError(t, "touch", db.TouchSandbox(ctx, team.ID, busy.ID, at(2*time.Minute)))

		got, err := db.PauseIdleSandbox(ctx, team.ID, idle.ID, at(time.Minute), at(time.Hour))
		mustNoError(t, "pause idle", err)
		if got.Status != wrenn.StatusPaused || !got.AutoPaused {
			t.Errorf("paused idle: %s auto %v", got.Status, got.AutoPaused)
		}
		_, err = db.PauseIdleSandbox(ctx, team.ID, busy.ID, at(time.Minute), at(time.Hour))
		wantError(t, err, wrenn.EConflict, "sandbox has been active")

		resumed, err := db.ResumeSandboxWithin(ctx, team.ID, idle.ID, wrenn.Quota{}, at(2*time.Hour))
		mustNoError(t, "resume", err)
		if resumed.AutoPaused {
			t.Error("resumed sandbox still reads paused by its timeout")
		}
		paused, err := db.TransitionSandbox(ctx, team.ID, idle.ID, []wrenn.SandboxStatus{wrenn.StatusRunning}, wrenn.StatusPaused, at(3*time.Hour))
		mustNoError(t, "pause", err)
		if paused.AutoPaused {
			t.Error("a client's pause reads as the timeout's")
		}
	})
}

// TestStoppedRetention: list by status, and stopped records deleted once
// past their retention, nothing else.
func TestStoppedRetention(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		_, team := mustAccount(t, db, "alice@example.com", base)
		old := mustSandbox(t, db, team.ID, wrenn.StatusStopped, base)
		recent := mustSandbox(t, db, team.ID, wrenn.StatusStopped, at(time.Hour))
		running := mustSandbox(t, db, team.ID, wrenn.StatusRunning, base)

		list, err := db.ListSandboxes(ctx, team.ID, wrenn.StatusStopped)
		mustNoError(t, "list stopped", err)
		mustEqual(t, "stopped", list, []*wrenn.Sandbox{recent, old})

		n, err := db.DeleteStoppedBefore(ctx, at(time.Minute))
		mustNoError(t, "delete", err)
		if n != 1 {
			t.Errorf("deleted %d, want 1", n)
		}
		list, err = db.ListSandboxes(ctx, team.ID)
		mustNoError(t, "list", err)
		mustEqual(t, "left", list, []*wrenn.Sandbox{recent, running})
	})
}
