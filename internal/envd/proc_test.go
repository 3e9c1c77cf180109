package envd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wrennhq/wrenn"
)

// output is what a process stream gave: its events in order.
type output struct {
	pid      int
	events   []wrenn.ExecEvent
	stdout   string
	stderr   string
	exitCode *int
}

// readUntil reads a process stream until stop says so, or its exit.
func readUntil(t *testing.T, st wrenn.ProcessStream, stop func(*output) bool) *output {
	t.Helper()
	o := &output{}
	for {
		if stop != nil && stop(o) {
			return o
		}
		ev, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return o
		}
		if err != nil {
			t.Fatalf("recv: %v (so far %+v)", err, o)
		}
		o.events = append(o.events, ev)
		switch ev.Type {
		case wrenn.ExecStarted:
			o.pid = ev.PID
		case wrenn.ExecStdout:
			o.stdout += string(ev.Data)
		case wrenn.ExecStderr:
			o.stderr += string(ev.Data)
		case wrenn.ExecExited:
			code := ev.ExitCode
			o.exitCode = &code
		}
	}
}

func (g *testGuest) mustSpawn(t *testing.T, req wrenn.ProcessRequest) wrenn.Process {
	t.Helper()
	p, err := g.Spawn(context.Background(), req)
	if err != nil {
		t.Fatalf("spawn %q: %v", req.Cmd, err)
	}
	return p
}

func (g *testGuest) mustAttach(t *testing.T, sel wrenn.ProcessSelector) *ProcessStream {
	t.Helper()
	st, err := g.Attach(context.Background(), sel)
	if err != nil {
		t.Fatalf("attach %+v: %v", sel, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestSpawnReplaysOutput(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	gate := filepath.Join(t.TempDir(), "gate")
	p := g.mustSpawn(t, wrenn.ProcessRequest{Cmd: "echo out1; echo err1 >&2; while [ ! -e " + gate + " ]; do sleep 0.02; done; echo out2; exit 5", Tag: "replay"})
	if p.PID <= 0 || p.Tag != "replay" {
		t.Fatalf("spawned %+v", p)
	}
	// Attached after it printed: the output so far comes first.
	st := g.mustAttach(t, wrenn.ProcessSelector{Tag: "replay"})
	o := readUntil(t, st, func(o *output) bool { return o.stdout == "out1\n" && o.stderr == "err1\n" })
	if o.pid != p.PID {
		t.Errorf("start pid %d, want %d", o.pid, p.PID)
	}
	st.Close()
	// The process runs on without a reader, and exits; attaching again
	// replays everything, then the exit.
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "exit", func() bool { return processGone(p.PID) })
	for range 2 {
		o = readUntil(t, g.mustAttach(t, wrenn.ProcessSelector{PID: p.PID}), nil)
		if o.stdout != "out1\nout2\n" || o.stderr != "err1\n" || o.exitCode == nil || *o.exitCode != 5 {
			t.Errorf("replay: %+v exit %v", o, o.exitCode)
		}
		if first := o.events[0]; first.Type != wrenn.ExecStarted {
			t.Errorf("first event %+v, want start", first)
		}
	}
	ps, err := g.Processes(context.Background())
	if err != nil || len(ps) != 1 || ps[0].Running || ps[0].ExitCode != 5 || ps[0].Tag != "replay" {
		t.Errorf("processes: %+v, %v", ps, err)
	}
}

func TestSpawnOrderAndStreams(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	p := g.mustSpawn(t, wrenn.ProcessRequest{Cmd: "sh", Args: []string{"-c", "for i in 1 2 3; do echo o$i; sleep 0.05; echo e$i >&2; sleep 0.05; done"}})
	if !strings.HasPrefix(p.Tag, "proc-") || len(p.Tag) != len("proc-")+8 {
		t.Errorf("made-up tag %q", p.Tag)
	}
	o := readUntil(t, g.mustAttach(t, wrenn.ProcessSelector{PID: p.PID}), nil)
	var seq []string
	for _, ev := range o.events {
		if ev.Type == wrenn.ExecStdout || ev.Type == wrenn.ExecStderr {
			seq = append(seq, string(ev.Type)+":"+strings.TrimSpace(string(ev.Data)))
		}
	}
	want := "stdout:o1 stderr:e1 stdout:o2 stderr:e2 stdout:o3 stderr:e3"
	if strings.Join(seq, " ") != want || o.exitCode == nil || *o.exitCode != 0 {
		t.Errorf("events %q exit %v, want %q", seq, o.exitCode, want)
	}
}

func TestSpawnEnvAndDir(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	dir := t.TempDir()
	p := g.mustSpawn(t, wrenn.ProcessRequest{Cmd: `echo "$FOO"; pwd`, Env: map[string]string{"FOO": "bar"}, Dir: dir})
	o := readUntil(t, g.mustAttach(t, wrenn.ProcessSelector{PID: p.PID}), nil)
	if o.stdout != "bar\n"+dir+"\n" {
		t.Errorf("stdout %q", o.stdout)
	}
}

func TestSpawnRefusals(t *testing.T) {
	t.Parallel()
	g := MustStart(t, withProcLimit(3))
	ctx := context.Background()
	g.mustSpawn(t, wrenn.ProcessRequest{Cmd: "sleep 60", Tag: "busy"})
	tests := []struct {
		name string
		req  wrenn.ProcessRequest
		code string
	}{
		{"running tag", wrenn.ProcessRequest{Cmd: "true", Tag: "busy"}, wrenn.EConflict},
		{"numeric tag", wrenn.ProcessRequest{Cmd: "true", Tag: "123"}, wrenn.EInvalid},
		{"tag with slash", wrenn.ProcessRequest{Cmd: "true", Tag: "a/b"}, wrenn.EInvalid},
		{"long tag", wrenn.ProcessRequest{Cmd: "true", Tag: strings.Repeat("t", maxTag+1)}, wrenn.EInvalid},
		{"empty cmd", wrenn.ProcessRequest{}, wrenn.EInvalid},
		{"missing program", wrenn.ProcessRequest{Cmd: "no-such-program-envd", Args: []string{"x"}}, wrenn.EInvalid},
		{"missing dir", wrenn.ProcessRequest{Cmd: "true", Dir: "/no/such/dir"}, wrenn.EInvalid},
		{"long command", wrenn.ProcessRequest{Cmd: "echo", Args: []string{strings.Repeat("a", maxProcEntry)}}, wrenn.EInvalid},
	}
	for _, tt := range tests {
		if _, err := g.Spawn(ctx, tt.req); wrenn.ErrorCode(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
	}
	for _, sel := range []wrenn.ProcessSelector{{PID: 1 << 30}, {Tag: "nobody"}} {
		if _, err := g.Attach(ctx, sel); wrenn.ErrorCode(err) != wrenn.ENotFound {
			t.Errorf("attach %+v: %v", sel, err)
		}
		if err := g.Kill(ctx, sel, wrenn.SIGKILL); wrenn.ErrorCode(err) != wrenn.ENotFound {
			t.Errorf("kill %+v: %v", sel, err)
		}
	}
	if err := g.Kill(ctx, wrenn.ProcessSelector{Tag: "busy"}, "SIGHUP"); wrenn.ErrorCode(err) != wrenn.EInvalid {
		t.Errorf("kill with SIGHUP: %v", err)
	}

	// The table holds 3: exited entries make room, running ones do not.
	done := g.mustSpawn(t, wrenn.ProcessRequest{Cmd: "true", Tag: "done"})
	readUntil(t, g.mustAttach(t, wrenn.ProcessSelector{PID: done.PID}), nil)
	g.mustSpawn(t, wrenn.ProcessRequest{Cmd: "sleep 60"})
	again := g.mustSpawn(t, wrenn.ProcessRequest{Cmd: "sleep 60", Tag: "done"}) // an exited process's tag is free
	if _, err := g.Spawn(ctx, wrenn.ProcessRequest{Cmd: "sleep 60"}); wrenn.ErrorCode(err) != wrenn.EQuotaExceeded {
		t.Errorf("spawn past the limit: %v", err)
	}
	ps, err := g.Processes(ctx)
	if err != nil || len(ps) != 3 {
		t.Fatalf("processes: %+v, %v", ps, err)
	}
	for _, p := range ps {
		if !p.Running {
			t.Errorf("%+v: the exited entry should have made room", p)
		}
	}
	if ps[2].PID != again.PID || ps[0].Tag != "busy" {
		t.Errorf("order: %+v", ps)
	}
}

func TestKillProcess(t *testing.T) {
	t.Parallel()
	g := MustStart(t, withStopGrace(300*time.Millisecond))
	ctx := context.Background()

	// SIGTERM reaches a process that traps it.
	p := g.mustSpawn(t, wrenn.ProcessRequest{Cmd: "bash", Args: []string{"-c", `trap 'echo term; exit 7' TERM; echo ready; while :; do sleep 0.05; done`}, Tag: "trapper"})
	st := g.mustAttach(t, wrenn.ProcessSelector{Tag: "trapper"})
	readUntil(t, st, func(o *output) bool { return o.stdout == "ready\n" })
	if err := g.Kill(ctx, wrenn.ProcessSelector{Tag: "trapper"}, ""); err != nil {
		t.Fatal(err)
	}
	o := readUntil(t, st, nil)
	if o.stdout != "term\n" || o.exitCode == nil || *o.exitCode != 7 {
		t.Errorf("after kill: %+v exit %v", o, o.exitCode)
	}
	if err := g.Kill(ctx, wrenn.ProcessSelector{PID: p.PID}, ""); wrenn.ErrorCode(err) != wrenn.ENotFound {
		t.Errorf("kill an exited process: %v", err)
	}

	// SIGKILL at once, whatever the process traps.
	p = g.mustSpawn(t, wrenn.ProcessRequest{Cmd: "trap '' TERM; echo ready; sleep 60"})
	st = g.mustAttach(t, wrenn.ProcessSelector{PID: p.PID})
	readUntil(t, st, func(o *output) bool { return o.stdout == "ready\n" })
	start := time.Now()
	if err := g.Kill(ctx, wrenn.ProcessSelector{PID: p.PID}, wrenn.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if o := readUntil(t, st, nil); o.exitCode == nil || *o.exitCode != 137 || time.Since(start) > 2*time.Second {
		t.Errorf("SIGKILL: exit %v after %s", o.exitCode, time.Since(start))
	}

	// The whole group: a member that ignores SIGTERM outlives its leader,
	// and is killed once the leader has gone.
	p = g.mustSpawn(t, wrenn.ProcessRequest{Cmd: "bash", Args: []string{"-c", `trap 'exit 0' TERM; (trap '' TERM; while :; do sleep 0.05; done) & echo $!; while :; do sleep 0.05; done`}})
	st = g.mustAttach(t, wrenn.ProcessSelector{PID: p.PID})
	o = readUntil(t, st, func(o *output) bool { return strings.HasSuffix(o.stdout, "\n") })
	child, err := strconv.Atoi(strings.TrimSpace(o.stdout))
	if err != nil {
		t.Fatal(o.stdout)
	}
	if err := g.Kill(ctx, wrenn.ProcessSelector{PID: p.PID}, wrenn.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the group member gone", func() bool { return processGone(child) })
}

// TestProcessOutlivesSession: a host that goes away leaves background
// processes running; the next session finds them with their output.
func TestProcessOutlivesSession(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	p := g.mustSpawn(t, wrenn.ProcessRequest{Cmd: "echo before; sleep 60", Tag: "survivor"})
	st := g.mustAttach(t, wrenn.ProcessSelector{Tag: "survivor"})
	readUntil(t, st, func(o *output) bool { return o.stdout == "before\n" })
	g.host.Close() // the session breaks under the open stream

	c := g.MustReconnect(t)
	ctx := context.Background()
	ps, err := c.Processes(ctx)
	if err != nil || len(ps) != 1 || !ps[0].Running || ps[0].PID != p.PID || ps[0].Tag != "survivor" {
		t.Fatalf("processes after reconnecting: %+v, %v", ps, err)
	}
	st2, err := c.Attach(ctx, wrenn.ProcessSelector{Tag: "survivor"})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	readUntil(t, st2, func(o *output) bool { return o.stdout == "before\n" })
	if err := c.Kill(ctx, wrenn.ProcessSelector{Tag: "survivor"}, wrenn.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if o := readUntil(t, st2, nil); o.exitCode == nil || *o.exitCode != 137 {
		t.Errorf("exit %v", o.exitCode)
	}
}

// TestProcessOutputWindow: a process that prints more than the window
// keeps the latest output; a client attaching late reads it from a rune's
// start, in order.
func TestProcessOutputWindow(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	// 3 MiB of numbered lines, with a multi-byte rune in each.
	p := g.mustSpawn(t, wrenn.ProcessRequest{Cmd: `i=0; while [ $i -lt 150000 ]; do echo "é line $i"; i=$((i+1)); done`})
	o := readUntil(t, g.mustAttach(t, wrenn.ProcessSelector{PID: p.PID}), nil)
	if o.exitCode == nil || *o.exitCode != 0 {
		t.Fatalf("exit %v", o.exitCode)
	}
	// A reader that attached at once may have kept up with everything;
	// one that attaches now reads only the window.
	o = readUntil(t, g.mustAttach(t, wrenn.ProcessSelector{PID: p.PID}), nil)
	if len(o.stdout) > wrenn.MaxProcessOutput || len(o.stdout) < wrenn.MaxProcessOutput-64<<10 {
		t.Errorf("window of %d bytes", len(o.stdout))
	}
	if !utf8.ValidString(o.stdout) || !strings.HasSuffix(o.stdout, "é line 149999\n") {
		t.Errorf("window is not the latest text: ends %q", o.stdout[max(0, len(o.stdout)-40):])
	}
	lines := strings.Split(strings.TrimSuffix(o.stdout, "\n"), "\n")
	for i := 1; i+1 < len(lines); i++ {
		a, _ := strconv.Atoi(strings.TrimPrefix(lines[i], "é line "))
		b, _ := strconv.Atoi(strings.TrimPrefix(lines[i+1], "é line "))
		if b != a+1 {
			t.Fatalf("lines out of order: %q then %q", lines[i], lines[i+1])
		}
	}
}

func TestOutputLog(t *testing.T) {
	t.Parallel()
	l := newOutputLog(1000)
	buf := make([]byte, 4096)
	readAll := func(off int64) (string, int64) {
		var b bytes.Buffer
		for {
			r := l.read(off, buf)
			if r.n == 0 {
				return b.String(), r.next
			}
			b.WriteString(string(rune(r.typ)) + string(buf[:r.n]))
			off = r.next
		}
	}
	l.write(frameStdout, []byte("ab"))
	l.write(frameStdout, []byte("cd")) // joins the chunk before
	l.write(frameStderr, []byte("ef"))
	if got, next := readAll(0); got != "1abcd2ef" || next != 6 {
		t.Errorf("read %q to %d", got, next)
	}
	if got, _ := readAll(3); got != "1d2ef" {
		t.Errorf("read from 3: %q", got)
	}
	// Past the limit the oldest goes; a reader behind skips to the window.
	l.write(frameStdout, bytes.Repeat([]byte("x"), 900))
	start, end := l.held()
	if end != 906 || start == 0 {
		t.Errorf("held [%d, %d)", start, end)
	}
	if got, _ := readAll(0); !strings.HasPrefix(got, "2") && !strings.HasPrefix(got, "1x") {
		t.Errorf("read from before the window: %.10q", got)
	}
	// Many one-byte chunks cost their overhead: the log holds few of them.
	for i := range 1000 {
		l.write(byte('1'+i%2), []byte("y"))
	}
	if len(l.chunks) > 1000/chunkCost+1 {
		t.Errorf("%d chunks held", len(l.chunks))
	}
	// A cut inside a rune moves to the rune's start.
	l2 := newOutputLog(chunkCost + 5)
	l2.write(frameStdout, []byte("aé€")) // 1+2+3 bytes: one over
	if r := l2.read(0, buf); string(buf[:r.n]) != "é€" {
		t.Errorf("after a cut: %q", buf[:r.n])
	}
	// Exit comes once everything is read.
	r := l2.read(6, buf)
	if r.exited || r.wait == nil {
		t.Errorf("before exit: %+v", r)
	}
	l2.exit(3)
	select {
	case <-r.wait:
	default:
		t.Error("waiters not told of the exit")
	}
	if r := l2.read(6, buf); !r.exited || r.code != 3 {
		t.Errorf("after exit: %+v", r)
	}
}

// TestProcessChildrenKeepOutput: a child that keeps the output open after
// its parent exited goes on printing into the log, not into EPIPE.
func TestProcessChildrenKeepOutput(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	p := g.mustSpawn(t, wrenn.ProcessRequest{Cmd: `(sleep 0.8; echo late; exec sleep 60) & echo $!; exit 3`})
	o := readUntil(t, g.mustAttach(t, wrenn.ProcessSelector{PID: p.PID}), nil)
	if o.exitCode == nil || *o.exitCode != 3 {
		t.Fatalf("exit %v", o.exitCode)
	}
	child, err := strconv.Atoi(strings.TrimSpace(o.stdout))
	if err != nil {
		t.Fatalf("stdout %q", o.stdout)
	}
	eventually(t, 5*time.Second, "the child's late output", func() bool {
		o := readUntil(t, g.mustAttach(t, wrenn.ProcessSelector{PID: p.PID}), nil)
		return strings.HasSuffix(o.stdout, "late\n") && o.exitCode != nil && *o.exitCode == 3
	})
	if processGone(child) {
		t.Error("the child died")
	}
}

// TestOutputLogProperties: whatever is written, in pieces of any size and
// either stream, the log holds a suffix of it (from a rune's start, so
// that text stays text), with each byte's stream, within its limit, and
// always the latest write whole when it fits.
func TestOutputLogProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "b", "\n", "é", "€", "\xff"} // whole runes, and a byte that is none
	buf := make([]byte, outputChunkSize)
	for round := range 200 {
		limit := chunkCost + 1 + rng.IntN(8<<10)
		l := newOutputLog(limit)
		var ref []byte // each written byte, then its stream: pairs
		for range 1 + rng.IntN(300) {
			typ := byte('1' + rng.IntN(2))
			var p []byte
			for n := rng.IntN(800); len(p) < n; {
				p = append(p, pieces[rng.IntN(len(pieces))]...)
			}
			l.write(typ, p)
			for _, c := range p {
				ref = append(ref, c, typ)
			}
			if l.cost > limit {
				t.Fatalf("round %d: cost %d over the limit %d", round, l.cost, limit)
			}
			var got []byte
			for off := int64(0); ; {
				r := l.read(off, buf)
				if r.n == 0 {
					break
				}
				for _, c := range buf[:r.n] {
					got = append(got, c, r.typ)
				}
				off = r.next
			}
			if !bytes.HasSuffix(ref, got) {
				t.Fatalf("round %d: the log is not a suffix of what was written", round)
			}
			if start, end := l.held(); int(end-start)*2 != len(got) || int(end)*2 != len(ref) {
				t.Fatalf("round %d: held [%d, %d) but read %d of %d bytes", round, start, end, len(got)/2, len(ref)/2)
			}
			if len(p)+chunkCost+utf8.UTFMax <= limit && len(got) < 2*len(p) {
				t.Fatalf("round %d: the last write of %d bytes is not all held (%d)", round, len(p), len(got)/2)
			}
			if len(got) > 0 && !utf8.RuneStart(got[0]) {
				t.Fatalf("round %d: the log starts inside a rune", round)
			}
		}
	}
}
