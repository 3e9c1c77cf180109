package control

import (
	"context"
	"log/slog"
	"time"

	"github.com/wrennhq/wrenn"
)

// A team's stats and usage (issue 11). A StatsRecorder records, once a
// step (a minute by default), what each team's running sandboxes reserve,
// and adds the step's share to the day's usage; the Service answers from
// those records and, for what runs now, from the sandboxes themselves.

// DefaultStatsStep is how often a StatsRecorder records.
const DefaultStatsStep = time.Minute

// statsKept is how long samples are kept: the peaks' 30 days, and a day
// for the 30-day series' first step.
const statsKept = 31 * 24 * time.Hour

// SampleRecorder records and prunes the teams' samples (internal/store).
type SampleRecorder interface {
	// RecordTeamSamples records the step starting at at, once across
	// control planes, and adds it to the teams' daily usage.
	RecordTeamSamples(ctx context.Context, at time.Time, step time.Duration) (int, error)
	PruneTeamSamples(ctx context.Context, before time.Time) error
}

// StatsStore reads the teams' samples and daily usage.
type StatsStore interface {
	// TeamSamples are the team's samples in [from, to), oldest first.
	TeamSamples(ctx context.Context, teamID string, from, to time.Time) ([]wrenn.TeamSample, error)
	// TeamPeaks are the largest of the team's samples since since.
	TeamPeaks(ctx context.Context, teamID string, since time.Time) (wrenn.TeamSample, error)
	// TeamDailyUsage is the team's usage of the days from to to
	// (YYYY-MM-DD, both included); days without any are left out.
	TeamDailyUsage(ctx context.Context, teamID, from, to string) ([]wrenn.DailyUsage, error)
}

// StatsRecorderConfig wires a StatsRecorder.
type StatsRecorderConfig struct {
	Store  SampleRecorder
	Now    func() time.Time
	Step   time.Duration // 0 means DefaultStatsStep
	Logger *slog.Logger
}

// StatsRecorder records the teams' samples once a step.
type StatsRecorder struct {
	c StatsRecorderConfig
}

// NewStatsRecorder returns a StatsRecorder.
func NewStatsRecorder(c StatsRecorderConfig) *StatsRecorder {
	if c.Step <= 0 {
		c.Step = DefaultStatsStep
	}
	return &StatsRecorder{c: c}
}

// Run records now and then at the start of every step until ctx ends.
func (r *StatsRecorder) Run(ctx context.Context) {
	for {
		if err := r.Once(ctx); err != nil && ctx.Err() == nil {
			r.c.Logger.WarnContext(ctx, "record team stats", slog.Any(attrError, err))
		}
		now := r.c.Now()
		next := now.Truncate(r.c.Step).Add(r.c.Step)
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Once records the step now is in and prunes what is older than kept.
func (r *StatsRecorder) Once(ctx context.Context) error {
	now := r.c.Now().UTC()
	if _, err := r.c.Store.RecordTeamSamples(ctx, now.Truncate(r.c.Step), r.c.Step); err != nil {
		return err
	}
	return r.c.Store.PruneTeamSamples(ctx, now.Add(-statsKept))
}

// statsRanges are the stats' ranges and the step of each one's series.
var statsRanges = map[string]struct{ window, step time.Duration }{
	"5m":  {5 * time.Minute, time.Minute},
	"1h":  {time.Hour, time.Minute},
	"6h":  {6 * time.Hour, 5 * time.Minute},
	"24h": {24 * time.Hour, 15 * time.Minute},
	"30d": {30 * 24 * time.Hour, 6 * time.Hour},
}

// DefaultStatsRange is the range of a stats request that names none.
const DefaultStatsRange = "1h"

// TeamStats is what TeamStats reports.
type TeamStats struct {
	Range   string
	Current wrenn.TeamSample   // now, At the time it was read
	Peaks   wrenn.TeamSample   // the largest of the last 30 days and now
	Series  []wrenn.TeamSample // one per step of the range, At its start
}

// TeamStats reports the team's running sandboxes now, their 30-day peaks
// and a series over rng ("" is DefaultStatsRange): each step's largest
// recorded values, 0 where none were.
func (s *Service) TeamStats(ctx context.Context, teamID, rng string) (*TeamStats, error) {
	if rng == "" {
		rng = DefaultStatsRange
	}
	r, ok := statsRanges[rng]
	if !ok {
		return nil, wrenn.Errorf(wrenn.EInvalid, "range must be one of 5m, 1h, 6h, 24h, 30d")
	}
	if s.stats == nil {
		return nil, wrenn.Errorf(wrenn.EInternal, "stats are not recorded")
	}
	now := s.nowUTC()
	u, err := s.quotas.TeamUsage(ctx, teamID)
	if err != nil {
		return nil, err
	}
	out := &TeamStats{Range: rng, Current: wrenn.TeamSample{At: now, Running: u.Sandboxes, VCPUs: u.VCPUs, MemoryMB: u.MemoryMB}}
	if out.Peaks, err = s.stats.TeamPeaks(ctx, teamID, now.Add(-30*24*time.Hour)); err != nil {
		return nil, err
	}
	out.Peaks.Running = max(out.Peaks.Running, u.Sandboxes)
	out.Peaks.VCPUs = max(out.Peaks.VCPUs, u.VCPUs)
	out.Peaks.MemoryMB = max(out.Peaks.MemoryMB, u.MemoryMB)

	end := now.Truncate(r.step).Add(r.step) // the step now is in is the last
	start := end.Add(-r.window)
	samples, err := s.stats.TeamSamples(ctx, teamID, start, end)
	if err != nil {
		return nil, err
	}
	out.Series = make([]wrenn.TeamSample, r.window/r.step)
	for i := range out.Series {
		out.Series[i].At = start.Add(time.Duration(i) * r.step)
	}
	for _, smp := range samples {
		i := int(smp.At.Sub(start) / r.step)
		if i < 0 || i >= len(out.Series) {
			continue
		}
		p := &out.Series[i]
		p.Running, p.VCPUs, p.MemoryMB = max(p.Running, smp.Running), max(p.VCPUs, smp.VCPUs), max(p.MemoryMB, smp.MemoryMB)
	}
	return out, nil
}

// maxUsageDays bounds the days one usage request covers.
const maxUsageDays = 366

// UsageReport is what TeamUsage reports: a point for every day.
type UsageReport struct {
	From, To string // YYYY-MM-DD
	Days     []wrenn.DailyUsage
}

// TeamUsage reports the team's daily usage from from to to (YYYY-MM-DD,
// UTC, both included); "" to is today, "" from 30 days before to.
func (s *Service) TeamUsage(ctx context.Context, teamID, from, to string) (*UsageReport, error) {
	if s.stats == nil {
		return nil, wrenn.Errorf(wrenn.EInternal, "stats are not recorded")
	}
	last := s.nowUTC().Truncate(24 * time.Hour)
	if to != "" {
		t, err := parseDay("to", to)
		if err != nil {
			return nil, err
		}
		last = t
	}
	first := last.AddDate(0, 0, -30)
	if from != "" {
		f, err := parseDay("from", from)
		if err != nil {
			return nil, err
		}
		first = f
	}
	switch {
	case first.After(last):
		return nil, wrenn.Errorf(wrenn.EInvalid, "from must not be after to")
	case last.Sub(first) >= maxUsageDays*24*time.Hour:
		return nil, wrenn.Errorf(wrenn.EInvalid, "from and to may be at most %d days apart", maxUsageDays)
	}
	out := &UsageReport{From: first.Format(time.DateOnly), To: last.Format(time.DateOnly)}
	days, err := s.stats.TeamDailyUsage(ctx, teamID, out.From, out.To)
	if err != nil {
		return nil, err
	}
	byDay := make(map[string]wrenn.DailyUsage, len(days))
	for _, d := range days {
		byDay[d.Day] = d
	}
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		day := d.Format(time.DateOnly)
		u, ok := byDay[day]
		if !ok {
			u = wrenn.DailyUsage{Day: day}
		}
		out.Days = append(out.Days, u)
	}
	return out, nil
}

// parseDay reads a YYYY-MM-DD date as midnight UTC.
func parseDay(name, v string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, v)
	if err != nil || len(v) != len(time.DateOnly) {
		return time.Time{}, wrenn.Errorf(wrenn.EInvalid, "%s must be a date as YYYY-MM-DD", name)
	}
	return t, nil
}
