package e2e

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkPauseResume: an idle 512 MiB sandbox paused (POST .../pause),
// then resumed and its first exec answering.
func BenchmarkPauseResume(b *testing.B) {
	s, key := benchServer(b)
	sb := s.create(key, map[string]any{"memory_mb": 512, "timeout_sec": 0})
	b.Cleanup(func() { s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil) })
	s.exec(key, sb.ID, "true")
	var pauses, resumes []time.Duration
	for b.Loop() {
		pause, resume := pauseResume(b, s, key, sb.ID)
		pauses, resumes = append(pauses, pause), append(resumes, resume)
	}
	reportQuantiles(b, "pause", pauses)
	reportQuantiles(b, "resume-exec", resumes)
}

// pauseResume times a pause, then a resume and the first exec after it.
func pauseResume(b *testing.B, s *server, key hdr, id string) (pause, resume time.Duration) {
	start := time.Now()
	s.must(200, "POST", "/v1/sandboxes/"+id+"/pause", key, nil, nil)
	pause = time.Since(start)
	start = time.Now()
	s.must(200, "POST", "/v1/sandboxes/"+id+"/resume", key, nil, nil)
	if r := s.exec(key, id, "true"); r.ExitCode != 0 {
		b.Fatalf("exec: %+v", r)
	}
	return pause, time.Since(start)
}

// BenchmarkFirstPauseResume: the first pause and resume of a sandbox
// restored from its base's warm snapshot. Its memory is a private mapping
// of the template's, so this pause writes its RAM out and this resume loads
// it into a file of its own; later ones are BenchmarkPauseResume's.
func BenchmarkFirstPauseResume(b *testing.B) {
	s, key := benchServer(b)
	var pauses, resumes []time.Duration
	for b.Loop() {
		b.StopTimer()
		sb := s.create(key, map[string]any{"timeout_sec": 0})
		s.exec(key, sb.ID, "true")
		b.StartTimer()
		pause, resume := pauseResume(b, s, key, sb.ID)
		pauses, resumes = append(pauses, pause), append(resumes, resume)
		b.StopTimer()
		s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
		b.StartTimer()
	}
	reportQuantiles(b, "pause", pauses)
	reportQuantiles(b, "resume-exec", resumes)
}

// BenchmarkSnapshotTemplate: POST /v1/snapshots of an idle sandbox;
// creating the sandbox is not timed. "restored" sandboxes come from the
// base's warm snapshot (private memory: the snapshot writes and reloads
// their RAM), "booted" ones were booted (1 GiB, not kept warm) and own
// their memory.
func BenchmarkSnapshotTemplate(b *testing.B) {
	s, key := benchServer(b)
	b.Run("restored", func(b *testing.B) { benchSnapshot(b, s, key, map[string]any{"timeout_sec": 0}) })
	b.Run("booted", func(b *testing.B) { benchSnapshot(b, s, key, map[string]any{"timeout_sec": 0, "memory_mb": 1024}) })
}

func benchSnapshot(b *testing.B, s *server, key hdr, body map[string]any) {
	var samples []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		sb := s.create(key, body)
		s.exec(key, sb.ID, "true")
		name := fmt.Sprintf("bench-%d", i)
		i++
		b.StartTimer()
		start := time.Now()
		s.must(201, "POST", "/v1/snapshots", key, map[string]any{"sandbox_id": sb.ID, "name": name}, nil)
		samples = append(samples, time.Since(start))
		b.StopTimer()
		s.must(204, "DELETE", "/v1/snapshots/"+name, key, nil, nil)
		s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
		b.StartTimer()
	}
	reportQuantiles(b, "snapshot", samples)
}

// benchTemplate makes a snapshot template of an idle sandbox.
func benchTemplate(b *testing.B, s *server, key hdr) string {
	b.Helper()
	sb := s.create(key, map[string]any{"timeout_sec": 0})
	s.exec(key, sb.ID, "true")
	var t template
	s.must(201, "POST", "/v1/snapshots", key, map[string]any{"sandbox_id": sb.ID, "name": "bench"}, &t)
	return t.Name
}

// BenchmarkCreateFromTemplate: POST /v1/sandboxes from a snapshot
// template, then the first exec answering; destroy is not timed. "pool":
// the create takes the sandbox the warm pool keeps of a template in use
// (the benchmark waits, untimed, for it to refill); "restore": no pool.
func BenchmarkCreateFromTemplate(b *testing.B) {
	b.Run("pool", func(b *testing.B) {
		s, key := benchServer(b)
		name := benchTemplate(b, s, key)
		first := s.create(key, map[string]any{"template": name}) // a restore; it starts the pool
		s.must(204, "DELETE", "/v1/sandboxes/"+first.ID, key, nil, nil)
		made := 1
		s.waitPoolReadyFor(b, name, made)
		benchCreateExec(b, s, key, map[string]any{"template": name}, func() {
			made++
			s.waitPoolReadyFor(b, name, made)
		})
	})
	b.Run("restore", func(b *testing.B) {
		s, key := benchServer(b, "WRENN_WARM_POOL=0")
		benchCreateExec(b, s, key, map[string]any{"template": benchTemplate(b, s, key)}, nil)
	})
}

// BenchmarkIdleSandboxes: the host memory 50 idle sandboxes from one
// template take together, as the host's used memory (MemTotal minus
// MemAvailable) before and after. Run it with -benchtime 1x.
func BenchmarkIdleSandboxes(b *testing.B) {
	const n = 50
	// Idle clones share their template's pages: admit them as the
	// operator of a dense host would, and lift the team's quota.
	s, key := benchServer(b, "WRENN_QUOTA_SANDBOXES=0", "WRENN_QUOTA_VCPUS=0", "WRENN_QUOTA_MEMORY_MB=0",
		"WRENN_CPU_OVERCOMMIT=32", "WRENN_MEMORY_OVERCOMMIT=4")
	name := benchTemplate(b, s, key)
	for b.Loop() {
		dropCaches(b)
		before := usedMemory(b)
		ids := make([]string, 0, n)
		for range n {
			sb := s.create(key, map[string]any{"template": name})
			ids = append(ids, sb.ID)
		}
		for _, id := range ids {
			s.exec(key, id, "true")
		}
		time.Sleep(5 * time.Second) // let them settle idle
		after := usedMemory(b)
		b.ReportMetric(float64(after-before)/(1<<30), "GiB-for-50")
		b.ReportMetric(float64(after-before)/n/(1<<20), "MiB-each")
		b.StopTimer()
		for _, id := range ids {
			s.must(204, "DELETE", "/v1/sandboxes/"+id, key, nil, nil)
		}
		b.StartTimer()
	}
}

func dropCaches(b *testing.B) {
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		b.Logf("drop caches: %v", err)
	}
}

// usedMemory is the host's MemTotal - MemAvailable, in bytes.
func usedMemory(b *testing.B) int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var total, avail int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "MemTotal:":
			total = v << 10
		case "MemAvailable:":
			avail = v << 10
		}
	}
	return total - avail
}
