package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/wrennhq/wrenn"
)

// A sandbox's metrics (wrenn.Metrics) are three rings of points, one per
// resolution, each as long as its window needs:
//
//	fine    every sample, 500 ms apart     1200 points: 10 minutes
//	mid     30 s averages                   240 points: 2 hours
//	coarse  5 min averages                  288 points: 24 hours
//
// Every sample goes into the fine ring and into the open step of each
// coarser one; a step closes, and its average becomes a point, when a
// sample of a later step arrives. Reads add the open steps' averages so
// far, so the coarse windows show the last minutes too. The rings live in
// memory (sampler.go); a pause writes them to the run directory's
// metrics.json, from which a paused sandbox is served after an agent
// restart and a resumed one goes on.

// tierSpec is one resolution: its step (0 for every sample) and how many
// points its window holds.
type tierSpec struct {
	step   time.Duration
	window time.Duration
}

var tierSpecs = [...]tierSpec{
	{0, 10 * time.Minute},
	{30 * time.Second, 2 * time.Hour},
	{5 * time.Minute, 24 * time.Hour},
}

func (t tierSpec) size() int {
	if t.step == 0 {
		return int(t.window / wrenn.MetricsInterval)
	}
	return int(t.window / t.step)
}

// tierFor is the tier that serves window: the finest whose window holds it.
func tierFor(window time.Duration) int {
	for i, t := range tierSpecs {
		if window <= t.window {
			return i
		}
	}
	return len(tierSpecs) - 1
}

// ring keeps the last n points. Its buffer grows as points come, so a
// short-lived sandbox holds little.
type ring struct {
	n     int
	buf   []wrenn.MetricPoint
	start int // index of the oldest point once full
}

func newRing(n int) ring { return ring{n: n} }

func (r *ring) push(p wrenn.MetricPoint) {
	if len(r.buf) < r.n {
		r.buf = append(r.buf, p)
		return
	}
	r.buf[r.start] = p
	r.start = (r.start + 1) % len(r.buf)
}

// since appends the points at or after t to out, oldest first.
func (r *ring) since(t time.Time, out []wrenn.MetricPoint) []wrenn.MetricPoint {
	for i := range r.buf {
		p := r.buf[(r.start+i)%len(r.buf)]
		if !p.Time.Before(t) {
			out = append(out, p)
		}
	}
	return out
}

// all is every point, oldest first.
func (r *ring) all() []wrenn.MetricPoint { return r.since(time.Time{}, nil) }

// step is the open step of a coarser tier: the sums of its samples.
type step struct {
	Start int64   `json:"start"` // unix ms of the step's start; 0 when empty
	N     int     `json:"n"`
	CPU   float64 `json:"cpu"`
	Mem   float64 `json:"mem"`
	Disk  float64 `json:"disk"`
}

func (s *step) add(p wrenn.MetricPoint) {
	s.N++
	s.CPU += p.CPUPct
	s.Mem += float64(p.MemBytes)
	s.Disk += float64(p.DiskBytes)
}

func (s step) average() wrenn.MetricPoint {
	n := float64(s.N)
	return wrenn.MetricPoint{Time: time.UnixMilli(s.Start).UTC(), CPUPct: s.CPU / n,
		MemBytes: int64(s.Mem/n + 0.5), DiskBytes: int64(s.Disk/n + 0.5)}
}

// series is one sandbox's metrics.
type series struct {
	rings [len(tierSpecs)]ring
	open  [len(tierSpecs)]step // open steps of the coarser tiers; [0] unused
}

func newSeries() *series {
	s := &series{}
	for i, t := range tierSpecs {
		s.rings[i] = newRing(t.size())
	}
	return s
}

// add records one sample.
func (s *series) add(p wrenn.MetricPoint) {
	s.rings[0].push(p)
	for i := 1; i < len(tierSpecs); i++ {
		start := p.Time.Truncate(tierSpecs[i].step).UnixMilli()
		o := &s.open[i]
		if o.N > 0 && o.Start != start {
			s.rings[i].push(o.average())
			*o = step{}
		}
		o.Start = start
		o.add(p)
	}
}

// window returns the points of the last d before now, oldest first, at
// the resolution tierFor(d) says.
func (s *series) window(now time.Time, d time.Duration) []wrenn.MetricPoint {
	i := tierFor(d)
	from := now.Add(-d)
	out := s.rings[i].since(from, make([]wrenn.MetricPoint, 0, 64))
	if o := s.open[i]; i > 0 && o.N > 0 {
		if p := o.average(); !p.Time.Before(from.Truncate(tierSpecs[i].step)) {
			out = append(out, p)
		}
	}
	return out
}

// seriesFile is a series on disk: each tier's points oldest first, as
// [unix ms, cpu %, mem bytes, disk bytes].
type seriesFile struct {
	Version int            `json:"version"`
	Tiers   [][][4]float64 `json:"tiers"`
	Open    []step         `json:"open"`
}

const seriesFileVersion = 1

// save writes s to path, replacing it atomically.
func (s *series) save(path string) error {
	f := seriesFile{Version: seriesFileVersion, Open: s.open[:]}
	for i := range s.rings {
		pts := s.rings[i].all()
		enc := make([][4]float64, len(pts))
		for j, p := range pts {
			enc[j] = [4]float64{float64(p.Time.UnixMilli()), p.CPUPct, float64(p.MemBytes), float64(p.DiskBytes)}
		}
		f.Tiers = append(f.Tiers, enc)
	}
	if err := writeJSONFile(path, f); err != nil {
		return fmt.Errorf("save metrics: %w", err)
	}
	return nil
}

// loadSeries reads what save wrote; a missing file is an empty series.
func loadSeries(path string) (*series, error) {
	s := newSeries()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("load metrics: %w", err)
	}
	var f seriesFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != seriesFileVersion {
		return s, fmt.Errorf("load metrics: %s is not a metrics file of this version", path)
	}
	for i := range min(len(f.Tiers), len(s.rings)) {
		for _, e := range f.Tiers[i] {
			s.rings[i].push(wrenn.MetricPoint{Time: time.UnixMilli(int64(e[0])).UTC(), CPUPct: e[1],
				MemBytes: int64(e[2]), DiskBytes: int64(e[3])})
		}
	}
	copy(s.open[:], f.Open)
	return s, nil
}
