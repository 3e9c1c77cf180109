package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/layout"
)

var _ wrenn.Metrics = (*Manager)(nil)

// The sampler: one goroutine reads, every wrenn.MetricsInterval, each
// running sandbox's VMM process and root disk, and adds a point to the
// sandbox's series (metrics.go).
//
//	cpu_pct    utime+stime of the VMM process (/proc/PID/stat, every
//	           thread, in clock ticks) since the last sample, over the
//	           time between them and the sandbox's vCPUs, capped at 100
//	mem_bytes  resident pages of the VMM process (/proc/PID/statm), as
//	           VmRSS counts them: guest RAM it has touched, its own heap
//	disk_bytes allocated blocks of the root disk overlay (rootfs.qcow2)
//
// The process's two proc files stay open between rounds and are read
// with pread into one buffer, so a round costs a few system calls per
// sandbox and no allocations once warm (BenchmarkSampleRound).

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat's times:
// 100 on every Linux architecture Wrenn runs on.
const clockTicks = 100

// sweepEvery is how many rounds pass between drops of the series of
// sandboxes the host no longer holds: a backstop for a round that adds a
// point just after Manager.forget dropped one.
const sweepEvery = 20

// sampleTarget is one sandbox a round samples.
type sampleTarget struct {
	id    string
	pid   int // its VMM process
	vcpus int
	disk  string // its root disk
	dir   layout.SandboxDir
}

// probe is the open proc files of one VMM process and its last reading.
type probe struct {
	pid         int
	stat, statm *os.File
	cpu         uint64    // utime+stime, clock ticks, at the last reading
	at          time.Time // when (monotonic)
	primed      bool      // cpu and at hold a reading
	round       uint64    // the last round that sampled it
}

func openProbe(pid int) (*probe, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.Open(dir + "/stat")
	if err != nil {
		return nil, err
	}
	statm, err := os.Open(dir + "/statm")
	if err != nil {
		stat.Close()
		return nil, err
	}
	return &probe{pid: pid, stat: stat, statm: statm}, nil
}

func (p *probe) close() {
	p.stat.Close()
	p.statm.Close()
}

// sampler keeps every sandbox's series and samples the running ones.
type sampler struct {
	now  func() time.Time
	log  *slog.Logger
	page int64

	mu     sync.Mutex         // guards series
	series map[string]*series // by sandbox ID

	// Only the goroutine running rounds touches what follows.
	probes map[string]*probe
	buf    []byte
	points []idPoint
	rounds uint64
}

type idPoint struct {
	id  string
	dir layout.SandboxDir
	p   wrenn.MetricPoint
}

func newSampler(now func() time.Time, log *slog.Logger) *sampler {
	return &sampler{now: now, log: log, page: int64(os.Getpagesize()), series: map[string]*series{},
		probes: map[string]*probe{}, buf: make([]byte, 1024)}
}

// round samples targets once.
func (s *sampler) round(targets []sampleTarget) {
	s.rounds++
	now, mono := s.now().UTC().Truncate(time.Millisecond), time.Now() // ms: what metrics.json keeps
	s.points = s.points[:0]
	for _, t := range targets {
		p, ok := s.read(t, mono)
		if ok {
			p.Time = now
			s.points = append(s.points, idPoint{id: t.id, dir: t.dir, p: p})
		}
	}
	// Probes of sandboxes no longer sampled (paused, gone) are closed.
	for id, p := range s.probes {
		if p.round != s.rounds {
			p.close()
			delete(s.probes, id)
		}
	}
	if len(s.points) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ip := range s.points {
		s.seriesLocked(ip.id, ip.dir).add(ip.p)
	}
}

// read takes one reading of t; ok is false for the first reading of a
// process (a CPU share needs two) and when the process cannot be read.
func (s *sampler) read(t sampleTarget, mono time.Time) (wrenn.MetricPoint, bool) {
	p := s.probes[t.id]
	if p != nil && p.pid != t.pid {
		p.close() // a new VM: resumed, or adopted
		p = nil
	}
	if p == nil {
		var err error
		if p, err = openProbe(t.pid); err != nil {
			return wrenn.MetricPoint{}, false // exited meanwhile
		}
		s.probes[t.id] = p
	}
	p.round = s.rounds
	cpu, err := s.readCPU(p.stat)
	if err != nil {
		return wrenn.MetricPoint{}, false
	}
	rss, err := s.readRSS(p.statm)
	if err != nil {
		return wrenn.MetricPoint{}, false
	}
	var pt wrenn.MetricPoint
	pt.MemBytes = rss
	var st syscall.Stat_t
	if syscall.Stat(t.disk, &st) == nil {
		pt.DiskBytes = st.Blocks * 512
	}
	prevCPU, prevAt, primed := p.cpu, p.at, p.primed
	p.cpu, p.at, p.primed = cpu, mono, true
	if !primed || cpu < prevCPU {
		return pt, false
	}
	dt := mono.Sub(prevAt).Seconds()
	if dt <= 0 {
		return pt, false
	}
	pt.CPUPct = min(float64(cpu-prevCPU)/clockTicks/dt/float64(max(t.vcpus, 1))*100, 100)
	return pt, true
}

// readCPU reads utime+stime from an open /proc/PID/stat: fields 14 and
// 15, counted after the command name, which may hold spaces and ')'.
func (s *sampler) readCPU(f *os.File) (uint64, error) {
	b, err := s.pread(f)
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	// After ") " come field 3 (state) onwards; utime is field 14.
	f14, rest, ok := fieldAt(b[i+1:], 14-2)
	if !ok {
		return 0, errors.New("malformed stat")
	}
	f15, _, ok := fieldAt(rest, 1)
	if !ok {
		return 0, errors.New("malformed stat")
	}
	u, err1 := parseUint(f14)
	k, err2 := parseUint(f15)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed stat")
	}
	return u + k, nil
}

// readRSS reads the resident size from an open /proc/PID/statm.
func (s *sampler) readRSS(f *os.File) (int64, error) {
	b, err := s.pread(f)
	if err != nil {
		return 0, err
	}
	f2, _, ok := fieldAt(b, 2)
	if !ok {
		return 0, errors.New("malformed statm")
	}
	n, err := parseUint(f2)
	if err != nil {
		return 0, errors.New("malformed statm")
	}
	return int64(n) * s.page, nil
}

// pread reads a whole proc file from its start into s.buf.
func (s *sampler) pread(f *os.File) ([]byte, error) {
	n, err := f.ReadAt(s.buf, 0)
	if n == 0 && err != nil {
		return nil, err
	}
	if n == len(s.buf) {
		return nil, fmt.Errorf("%s is longer than %d bytes", f.Name(), len(s.buf))
	}
	return s.buf[:n], nil
}

// fieldAt returns the n-th (1-based) space-separated field of b and what
// follows it.
func fieldAt(b []byte, n int) (field, rest []byte, ok bool) {
	for ; n > 0; n-- {
		b = bytes.TrimLeft(b, " \n")
		if len(b) == 0 {
			return nil, nil, false
		}
		end := bytes.IndexAny(b, " \n")
		if end < 0 {
			end = len(b)
		}
		field, b = b[:end], b[end:]
	}
	return field, b, true
}

func parseUint(b []byte) (uint64, error) {
	if len(b) == 0 {
		return 0, errors.New("empty number")
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errors.New("not a number")
		}
		n = n*10 + uint64(c-'0')
	}
	return n, nil
}

// seriesLocked is id's series, loaded from the run directory dir if a
// pause (or an earlier agent) left one there. Call with s.mu held.
func (s *sampler) seriesLocked(id string, dir layout.SandboxDir) *series {
	if ser := s.series[id]; ser != nil {
		return ser
	}
	ser, err := loadSeries(dir.Metrics())
	if err != nil {
		s.log.Warn("earlier metrics of a sandbox are lost", slog.String(attrSandboxID, id), slog.Any(attrError, err))
	}
	s.series[id] = ser
	return ser
}

// window is id's points of the last d.
func (s *sampler) window(id string, dir layout.SandboxDir, d time.Duration) []wrenn.MetricPoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seriesLocked(id, dir).window(s.now().UTC(), d)
}

// save writes id's series to its run directory, if it has one.
func (s *sampler) save(id string, dir layout.SandboxDir) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ser := s.series[id]
	if ser == nil {
		return nil
	}
	return ser.save(dir.Metrics())
}

// drop forgets id's series.
func (s *sampler) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.series, id)
}

// keepOnly drops the series of sandboxes not in held.
func (s *sampler) keepOnly(held map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.series {
		if !held[id] {
			delete(s.series, id)
		}
	}
}

// closeProbes closes every open proc file.
func (s *sampler) closeProbes() {
	for id, p := range s.probes {
		p.close()
		delete(s.probes, id)
	}
}

// sampled are the lifecycles in which a sandbox's VM is sampled.
var sampled = []lifecycle{lcRunning, lcUnresponsive}

// unserved are the lifecycles in which a sandbox has no metrics to show:
// it is not the control plane's (yet, or any more).
var unserved = []lifecycle{lcStarting, lcPooled, lcGone}

// sampleTarget says what to sample of sb, if its VM runs.
func (sb *sandbox) sampleTarget() (sampleTarget, bool) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if !slices.Contains(sampled, sb.lc) || sb.mach == nil || sb.mach.vm == nil {
		return sampleTarget{}, false
	}
	return sampleTarget{id: sb.id, pid: sb.mach.vm.PID(), vcpus: sb.rec.VCPUs, disk: sb.dir.RootDisk(), dir: sb.dir}, true
}

// metricsLoop samples the running sandboxes every interval until ctx ends,
// then writes every series to its run directory for the next agent.
func (m *Manager) metricsLoop(ctx context.Context, interval time.Duration, done chan<- struct{}) {
	defer close(done)
	s := m.metrics
	defer s.closeProbes()
	t := time.NewTicker(interval)
	defer t.Stop()
	var targets []sampleTarget
	for {
		select {
		case <-ctx.Done():
			m.saveMetrics()
			return
		case <-t.C:
		}
		all := m.all()
		targets = targets[:0]
		for _, sb := range all {
			if st, ok := sb.sampleTarget(); ok {
				targets = append(targets, st)
			}
		}
		s.round(targets)
		if s.rounds%sweepEvery == 0 {
			held := make(map[string]bool, len(all))
			for _, sb := range all {
				held[sb.id] = true
			}
			s.keepOnly(held)
		}
	}
}

// saveMetrics writes the series of every sandbox whose VM runs, so that
// an agent that adopts it goes on from them.
func (m *Manager) saveMetrics() {
	for _, sb := range m.all() {
		if st, ok := sb.sampleTarget(); ok {
			logErr(sb.log, "save metrics", m.metrics.save(st.id, st.dir))
		}
	}
}

// SandboxMetrics implements wrenn.Metrics: a sandbox that runs or is
// paused (or on its way between) is served from memory, or from what its
// last pause wrote if this agent has not sampled it.
func (m *Manager) SandboxMetrics(_ context.Context, id string, window time.Duration) ([]wrenn.MetricPoint, error) {
	sb, err := m.get(id)
	if err != nil {
		return nil, err
	}
	if lc := sb.lifecycle(); slices.Contains(unserved, lc) {
		return nil, lc.refusal()
	}
	if window <= 0 {
		return nil, wrenn.Errorf(wrenn.EInvalid, "metrics window must be positive")
	}
	return m.metrics.window(sb.id, sb.dir, window), nil
}
