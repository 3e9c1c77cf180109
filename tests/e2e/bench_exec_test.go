package e2e

import (
	"bufio"
	"cmp"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkExecPath: an exec round trip beside its floors, in one sandbox
// and one run (issue 14):
//
//	exec          POST .../exec of `true` (/bin/sh -c true: a builtin),
//	              through the API, the agent and envd
//	exec-program  exec of `ls /`, a plain command line envd runs without
//	              the shell, and exec-program-sh the same through the
//	              shell (`ls /;`): the shell's cost, in the same run
//	read          POST .../files/read of a small file: the same path with
//	              no process in the guest
//	guest         a fork+exec of /bin/true timed inside the guest by its
//	              shell (20 in a loop, per one): what the guest itself needs
func BenchmarkExecPath(b *testing.B) {
	s, key := benchServer(b, "WRENN_LOG_LEVEL=info")
	sb := s.create(key, map[string]any{})
	defer s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil)
	s.exec(key, sb.ID, "true")
	s.waitPoolReady(b, 2) // the pool's refill is done: it does not share the timing
	var reads, execs, programs, viaShell, guest []time.Duration
	timed := func(f func()) time.Duration {
		start := time.Now()
		f()
		return time.Since(start)
	}
	for b.Loop() {
		reads = append(reads, timed(func() {
			s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/files/read", key, map[string]string{"path": "/etc/hostname"}, nil)
		}))
		execs = append(execs, timed(func() {
			if r := s.exec(key, sb.ID, "true"); r.ExitCode != 0 {
				b.Fatalf("exec: %+v", r)
			}
		}))
		programs = append(programs, timed(func() { s.exec(key, sb.ID, "ls /") }))
		viaShell = append(viaShell, timed(func() { s.exec(key, sb.ID, "ls /;") }))
		if len(execs)%10 == 1 {
			guest = append(guest, guestForkExec(b, s, key, sb.ID))
		}
	}
	reportQuantiles(b, "read", reads)
	reportQuantiles(b, "guest-forkexec", guest)
	reportQuantiles(b, "exec", execs)
	reportQuantiles(b, "exec-program", programs)
	reportQuantiles(b, "exec-program-sh", viaShell)
}

// guestForkExec is a fork+exec of /bin/true as the guest's shell times it.
func guestForkExec(b *testing.B, s *server, key hdr, id string) time.Duration {
	r := s.exec(key, id, `s=$(date +%s%N); for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do /bin/true; done; e=$(date +%s%N); echo $(( (e-s)/20 ))`)
	ns, err := strconv.Atoi(strings.TrimSpace(r.Stdout))
	if err != nil {
		b.Fatalf("guest fork+exec: %+v", r)
	}
	return time.Duration(ns)
}

// BenchmarkResumePath: where a resume → first exec goes (issue 14). Each
// iteration pauses an idle 512 MiB sandbox, resumes it and runs its first
// exec, and reports besides the total:
//
//	qemu-start    the agent's start of QEMU and load of the device state
//	              (its "vm launched" log line)
//	connect-init  the guest agent answering the agent's handshake and
//	              taking its identity
//	first-exec    the server's handling of the first exec
//	tb-resume     the code blocks QEMU translated (TCG) from the restore to
//	              the resume's answer, and tb-first-exec during the first
//	              exec: after a restore every guest instruction that runs
//	              is translated afresh, in a new QEMU process
//	floor         a bare QEMU (same binary, -M microvm -S) to QMP ready
func BenchmarkResumePath(b *testing.B) {
	s, key := benchServer(b)
	sb := s.create(key, map[string]any{"memory_mb": 512, "timeout_sec": 0})
	b.Cleanup(func() { s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil) })
	s.exec(key, sb.ID, "true")
	var totals, floors []time.Duration
	var tbResume, tbExec []float64
	logs := len(s.logs.String())
	for b.Loop() {
		s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/pause", key, nil, nil)
		start := time.Now()
		s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/resume", key, nil, nil)
		b.StopTimer()
		sock := qmpSocketOf(b, s, sb.ID)
		tb0 := tbCount(b, sock)
		b.StartTimer()
		if r := s.exec(key, sb.ID, "true"); r.ExitCode != 0 {
			b.Fatalf("exec: %+v", r)
		}
		b.StopTimer()
		// The resume's own time: the pause is not counted, nor the QMP
		// query between the resume and the exec.
		totals = append(totals, time.Since(start))
		tb1 := tbCount(b, sock)
		tbResume, tbExec = append(tbResume, float64(tb0)), append(tbExec, float64(tb1-tb0))
		floors = append(floors, bareQEMUStart(b))
		b.StartTimer()
	}
	reportQuantiles(b, "floor-qemu-start", floors)
	out := s.logs.String()[logs:]
	reportQuantiles(b, "qemu-start", logDurations(out, "vm launched", "start"))
	reportQuantiles(b, "connect-init", logDurations(out, "vm launched", "connect_init"))
	reportQuantiles(b, "first-exec", logDurations(out, "/exec status=200", "duration"))
	reportQuantiles(b, "resume-exec", totals)
	b.ReportMetric(medianOf(tbResume, func(v float64) float64 { return v }), "tb-resume")
	b.ReportMetric(medianOf(tbExec, func(v float64) float64 { return v }), "tb-first-exec")
}

// qmpSocketOf is the QMP socket of sandbox id: its run directory is the one
// whose state names it (a sandbox claimed from the pool keeps the pool
// member's directory).
func qmpSocketOf(b *testing.B, s *server, id string) string {
	states, _ := filepath.Glob(filepath.Join(s.dataDir, "sandboxes", "*", "state.json"))
	for _, st := range states {
		data, err := os.ReadFile(st)
		if err == nil && strings.Contains(string(data), `"`+id+`"`) {
			return filepath.Join(filepath.Dir(st), "qmp.sock")
		}
	}
	b.Fatalf("no run directory holds %s", id)
	return ""
}

// tbCount is the number of translated blocks QEMU holds (HMP "info jit").
func tbCount(b *testing.B, sock string) int {
	out := hmp(b, sock, "info jit")
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "TB count"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(rest))
			if err == nil {
				return n
			}
		}
	}
	b.Fatalf("info jit: no TB count in %q", out)
	return 0
}

// hmp runs a human monitor command over the QMP socket sock.
func hmp(b *testing.B, sock, cmd string) string {
	c, err := net.Dial("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	send := func(v any) {
		q, _ := json.Marshal(v)
		if _, err := c.Write(append(q, '\n')); err != nil {
			b.Fatal(err)
		}
	}
	send(map[string]any{"execute": "qmp_capabilities"})
	send(map[string]any{"execute": "human-monitor-command", "arguments": map[string]any{"command-line": cmd}})
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			b.Fatalf("qmp %s: %v", sock, err)
		}
		var v struct{ Return json.RawMessage }
		if json.Unmarshal(line, &v) == nil && len(v.Return) > 0 && v.Return[0] == '"' {
			var s string
			json.Unmarshal(v.Return, &s)
			return s
		}
	}
}

// bareQEMUStart is a bare QEMU's start to its QMP greeting: the same
// binary, a microvm with no guest, stopped (-S).
func bareQEMUStart(b *testing.B) time.Duration {
	dir := b.TempDir()
	sock := filepath.Join(dir, "qmp.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.UnixListener).File()
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	cmd := exec.Command("qemu-system-x86_64", "-M", "microvm,acpi=off", "-accel", "tcg", "-S", "-nodefaults",
		"-display", "none", "-m", "512", "-chardev", "socket,id=qmp,fd=3,server=on,wait=off", "-mon", "chardev=qmp,mode=control")
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	// QEMU accepts on the listener it inherited; the connection waits in
	// its backlog until then.
	c, err := net.Dial("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := bufio.NewReader(c).ReadBytes('\n'); err != nil {
		b.Fatalf("bare qemu: %v", err)
	}
	return time.Since(start)
}

// BenchmarkEnvdInGuest runs the guest agent's own benchmarks
// (internal/envd, over a socketpair) inside a sandbox, where they run
// under the same emulation envd does, and reports each one's time per
// operation in ms: what envd's code costs a guest, apart from the channel
// to the host. ForkExec is ExecRoundTrip's floor (os/exec alone).
//
//	WRENN_ENVD_BENCH  the benchmarks to run (default Ping$|ExecRoundTrip|ForkExec)
func BenchmarkEnvdInGuest(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "envd.test")
	build := exec.Command("go", "test", "-c", "-o", bin, "./internal/envd")
	build.Dir, build.Env = repoRoot(), append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build the envd test binary: %v\n%s", err, out)
	}
	pattern := cmp.Or(os.Getenv("WRENN_ENVD_BENCH"), "Ping$|ExecRoundTrip|ForkExec")
	s, key := benchServer(b, "WRENN_LOG_LEVEL=info")
	sb := s.create(key, map[string]any{"timeout_sec": 0})
	defer s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil)
	f, err := os.Open(bin)
	if err != nil {
		b.Fatal(err)
	}
	uploadFrom(b, s, key, sb.ID, "stream/write", "/root/envd.test", f)
	f.Close()
	metrics := map[string][]float64{} // name-unit: a value per run
	for b.Loop() {
		r := s.exec(key, sb.ID, "chmod +x /root/envd.test && cd /tmp && /root/envd.test -test.run '^$' -test.benchtime 100x -test.bench '"+pattern+"'")
		if r.ExitCode != 0 {
			b.Fatalf("envd benchmarks in the guest: %+v", r)
		}
		for l := range strings.Lines(r.Stdout) {
			f := strings.Fields(l)
			if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
				continue
			}
			name := strings.TrimPrefix(f[0], "Benchmark")
			if i := strings.LastIndex(name, "-"); i > 0 {
				if _, err := strconv.Atoi(name[i+1:]); err == nil {
					name = name[:i] // the GOMAXPROCS suffix
				}
			}
			for i := 2; i+1 < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					continue
				}
				unit := f[i+1]
				if unit == "ns/op" {
					v, unit = v/1e6, "ms"
				}
				metrics[name+"-"+unit] = append(metrics[name+"-"+unit], v)
			}
		}
	}
	for name, v := range metrics {
		b.ReportMetric(medianOf(v, func(v float64) float64 { return v }), name)
	}
}
