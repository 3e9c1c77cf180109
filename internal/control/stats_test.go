package control_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/control"
)

// recorderFunc is a control.SampleRecorder of function fields.
type recorderFunc struct {
	record func(at time.Time, step time.Duration) (int, error)
	prune  func(before time.Time) error
}

func (r recorderFunc) RecordTeamSamples(_ context.Context, at time.Time, step time.Duration) (int, error) {
	return r.record(at, step)
}

func (r recorderFunc) PruneTeamSamples(_ context.Context, before time.Time) error {
	return r.prune(before)
}

// TestStatsRecorderOnce: a record is of the step now is in, and samples
// older than 31 days are pruned.
func TestStatsRecorderOnce(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 4, 59, 900, time.FixedZone("x", 3600))
	var gotAt, gotBefore time.Time
	var gotStep time.Duration
	r := control.NewStatsRecorder(control.StatsRecorderConfig{
		Store: recorderFunc{
			record: func(at time.Time, step time.Duration) (int, error) { gotAt, gotStep = at, step; return 1, nil },
			prune:  func(before time.Time) error { gotBefore = before; return nil },
		},
		Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler),
	})
	if err := r.Once(t.Context()); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 12, 7, 9, 4, 0, 0, time.UTC); !gotAt.Equal(want) || gotAt.Location() != time.UTC || gotStep != time.Minute {
		t.Errorf("recorded %s for %s, want %s for a minute", gotAt, gotStep, want)
	}
	if want := now.Add(-31 * 24 * time.Hour); !gotBefore.Equal(want) {
		t.Errorf("pruned before %s, want %s", gotBefore, want)
	}
}
