package agent

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/layout"
)

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

// fill adds a sample every 500 ms for d from t0, cpu i%100 at the i-th.
func fill(s *series, d time.Duration) time.Time {
	var now time.Time
	for i := 0; time.Duration(i)*wrenn.MetricsInterval < d; i++ {
		now = t0.Add(time.Duration(i) * wrenn.MetricsInterval)
		s.add(wrenn.MetricPoint{Time: now, CPUPct: float64(i % 100), MemBytes: 100, DiskBytes: int64(i)})
	}
	return now
}

func TestSeriesTiers(t *testing.T) {
	s := newSeries()
	now := fill(s, 3*time.Hour)
	for _, tc := range []struct {
		rng      string
		min, max int
		step     time.Duration
	}{
		{"5m", 600, 601, wrenn.MetricsInterval},
		{"10m", 1200, 1200, wrenn.MetricsInterval},
		{"1h", 120, 121, 30 * time.Second},
		{"2h", 240, 241, 30 * time.Second},
		{"6h", 36, 37, 5 * time.Minute}, // only 3 hours sampled
		{"24h", 36, 37, 5 * time.Minute},
	} {
		t.Run(tc.rng, func(t *testing.T) {
			pts := s.window(now, wrenn.MetricsRanges[tc.rng])
			if len(pts) < tc.min || len(pts) > tc.max {
				t.Fatalf("%d points, want %d to %d", len(pts), tc.min, tc.max)
			}
			for i := 1; i < len(pts); i++ {
				if d := pts[i].Time.Sub(pts[i-1].Time); d != tc.step {
					t.Fatalf("points %d and %d are %s apart, want %s", i-1, i, d, tc.step)
				}
			}
			if last := pts[len(pts)-1]; now.Sub(last.Time) > tc.step {
				t.Fatalf("last point at %s, %s before now", last.Time, now.Sub(last.Time))
			}
		})
	}
	// A 30 s step holds 60 samples of cpu 0..99 going round: a closed
	// step's average is the mean of its 60 values.
	pts := s.window(now, time.Hour)
	p := pts[0]
	i0 := int(p.Time.Sub(t0) / wrenn.MetricsInterval)
	var sum float64
	for i := i0; i < i0+60; i++ {
		sum += float64(i % 100)
	}
	if p.CPUPct != sum/60 || p.MemBytes != 100 || p.DiskBytes != int64(i0)+30 {
		t.Fatalf("first 30 s average = %+v, want cpu %v mem 100 disk %d", p, sum/60, i0+30)
	}
}

func TestSeriesSaveLoad(t *testing.T) {
	s := newSeries()
	now := fill(s, 40*time.Minute)
	path := filepath.Join(t.TempDir(), "metrics.json")
	if err := s.save(path); err != nil {
		t.Fatal(err)
	}
	got, err := loadSeries(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{10 * time.Minute, 2 * time.Hour, 24 * time.Hour} {
		if a, b := s.window(now, d), got.window(now, d); !reflect.DeepEqual(a, b) {
			t.Fatalf("window %s differs after a round trip: %d points, then %d", d, len(a), len(b))
		}
	}
	// Adding goes on where the saved series left off.
	got.add(wrenn.MetricPoint{Time: now.Add(time.Second), CPUPct: 7})
	if pts := got.window(now.Add(time.Second), time.Minute); pts[len(pts)-1].CPUPct != 7 {
		t.Fatal("a point added after loading is missing")
	}
	if s, err := loadSeries(filepath.Join(t.TempDir(), "none")); err != nil || len(s.window(now, time.Hour)) != 0 {
		t.Fatalf("missing file: %v", err)
	}
}

func TestReadCPU(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stat")
	// A command name with spaces and a ')' must not shift the fields.
	line := "4242 (qemu) x (y) S 1 2 3 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 5 0 100 1000 200\n"
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := newSampler(time.Now, slog.New(slog.DiscardHandler))
	got, err := s.readCPU(f)
	if err != nil || got != 1234+567 {
		t.Fatalf("readCPU = %d, %v; want %d", got, err, 1234+567)
	}
}

// TestSamplerRealProcess samples this test's own process while it burns
// CPU: the share must show it, and memory and disk be plausible.
func TestSamplerRealProcess(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "rootfs.qcow2")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newSampler(time.Now, slog.New(slog.DiscardHandler))
	defer s.closeProbes()
	target := []sampleTarget{{id: "sb-x", pid: os.Getpid(), vcpus: 1, disk: disk, dir: layout.SandboxDir(t.TempDir())}}
	s.round(target)
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	s.round(target)
	pts := s.window("sb-x", "", time.Minute)
	if len(pts) != 1 {
		t.Fatalf("%d points, want 1", len(pts))
	}
	p := pts[0]
	if p.CPUPct < 30 || p.MemBytes < 1<<20 || p.DiskBytes < 1<<20 {
		t.Fatalf("point %+v: want cpu >= 30%%, mem and disk >= 1 MiB", p)
	}
	// Saved, the points are what a new agent serves and goes on from.
	if err := s.save("sb-x", target[0].dir); err != nil {
		t.Fatal(err)
	}
	s2 := newSampler(time.Now, slog.New(slog.DiscardHandler))
	if got := s2.window("sb-x", target[0].dir, time.Minute); len(got) != 1 || got[0] != p {
		t.Fatalf("after a restart: %+v, want %+v", got, p)
	}
	// A process that is gone is dropped, not an error.
	target[0].pid = 1 << 30
	s.round(target)
	if len(s.probes) != 0 {
		t.Fatalf("%d probes left open", len(s.probes))
	}
}

// BenchmarkSampleRound measures one sampling round of 50 sandboxes: 50
// real processes (sleeping, as idle VMMs mostly are: what a round reads
// of a process costs the same whatever it runs) and 50 disk files. It
// reports the agent's CPU time per round and, at one round per
// wrenn.MetricsInterval, the share of one core sampling takes.
func BenchmarkSampleRound(b *testing.B) {
	const n = 50
	dir := b.TempDir()
	targets := make([]sampleTarget, n)
	for i := range targets {
		cmd := exec.Command("sleep", "600")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		disk := filepath.Join(dir, "disk"+string(rune('a'+i%26))+string(rune('a'+i/26)))
		if err := os.WriteFile(disk, make([]byte, 64<<10), 0o600); err != nil {
			b.Fatal(err)
		}
		id := wrenn.NewID(wrenn.PrefixSandbox)
		targets[i] = sampleTarget{id: id, pid: cmd.Process.Pid, vcpus: 1, disk: disk, dir: layout.SandboxDir(filepath.Join(dir, id))}
	}
	s := newSampler(time.Now, slog.New(slog.DiscardHandler))
	defer s.closeProbes()
	s.round(targets) // open the probes
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s.round(targets)
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(syscall.TimevalToNsec(after.Utime) - syscall.TimevalToNsec(before.Utime) +
		syscall.TimevalToNsec(after.Stime) - syscall.TimevalToNsec(before.Stime))
	perRound := cpu / time.Duration(b.N)
	b.ReportMetric(float64(perRound.Microseconds()), "cpu-µs/round")
	b.ReportMetric(float64(perRound)/float64(wrenn.MetricsInterval)*100, "%core")
}
