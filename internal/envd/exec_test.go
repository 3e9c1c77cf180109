package envd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
)

func TestExec(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	dir := t.TempDir()
	noExec := filepath.Join(dir, "noexec")
	if err := os.WriteFile(noExec, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		req        wrenn.ExecRequest
		stdout     string
		stderrHas  string
		exitCode   int
		stdoutFunc func(*testing.T, []byte)
	}{
		{name: "echo through sh", req: wrenn.ExecRequest{Cmd: "echo hello"}, stdout: "hello\n"},
		{name: "args run directly", req: wrenn.ExecRequest{Cmd: "echo", Args: []string{"a b", "$HOME"}}, stdout: "a b $HOME\n"},
		{name: "nonzero exit", req: wrenn.ExecRequest{Cmd: "exit 3"}, exitCode: 3},
		{name: "stderr apart", req: wrenn.ExecRequest{Cmd: "echo out; echo err >&2"}, stdout: "out\n", stderrHas: "err\n"},
		{name: "binary output", req: wrenn.ExecRequest{Cmd: `printf '\377\000\001'`}, stdout: "\xff\x00\x01"},
		{name: "random bytes", req: wrenn.ExecRequest{Cmd: "head", Args: []string{"-c", "256", "/dev/urandom"}},
			stdoutFunc: func(t *testing.T, b []byte) {
				if len(b) != 256 {
					t.Errorf("got %d bytes, want 256", len(b))
				}
			}},
		{name: "env and dir", req: wrenn.ExecRequest{Cmd: `pwd; echo "$FOO $HOME $LANG"`, Env: map[string]string{"FOO": "bar"}, Dir: dir},
			stdout: dir + "\nbar /root C.UTF-8\n"},
		{name: "env overrides default", req: wrenn.ExecRequest{Cmd: `echo $HOME`, Env: map[string]string{"HOME": "/tmp"}}, stdout: "/tmp\n"},
		{name: "default dir", req: wrenn.ExecRequest{Cmd: "pwd"}, stdout: "/root\n"},
		{name: "missing program", req: wrenn.ExecRequest{Cmd: "no-such-program-envd", Args: []string{"x"}},
			exitCode: 127, stderrHas: "no-such-program-envd: command not found"},
		{name: "missing program through sh", req: wrenn.ExecRequest{Cmd: "no-such-program-envd"}, exitCode: 127, stderrHas: "not found"},
		{name: "missing path", req: wrenn.ExecRequest{Cmd: "/no/such/program", Args: []string{"x"}}, exitCode: 127, stderrHas: "No such file"},
		{name: "not executable", req: wrenn.ExecRequest{Cmd: noExec, Args: []string{"x"}}, exitCode: 126, stderrHas: "Permission denied"},
		{name: "killed by a signal", req: wrenn.ExecRequest{Cmd: "kill -TERM $$"}, exitCode: 143},
		{name: "stdin is empty", req: wrenn.ExecRequest{Cmd: "cat"}, stdout: ""},
		// 600 KiB that JSON's HTML escaping would make 3.6 MiB, over a frame.
		{name: "args of < and &", req: wrenn.ExecRequest{Cmd: "echo", Args: slices.Repeat([]string{strings.Repeat("<&", 50<<10)}, 6)},
			stdout: strings.TrimSuffix(strings.Repeat(strings.Repeat("<&", 50<<10)+" ", 6), " ") + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := g.MustExec(t, tt.req)
			if res.ExitCode != tt.exitCode {
				t.Errorf("exit code %d, want %d (stderr %q)", res.ExitCode, tt.exitCode, res.Stderr)
			}
			if tt.stdoutFunc != nil {
				tt.stdoutFunc(t, res.Stdout)
			} else if string(res.Stdout) != tt.stdout {
				t.Errorf("stdout %q, want %q", res.Stdout, tt.stdout)
			}
			if !strings.Contains(string(res.Stderr), tt.stderrHas) {
				t.Errorf("stderr %q, want it to hold %q", res.Stderr, tt.stderrHas)
			}
		})
	}
}

func TestExecInvalid(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	tests := []struct {
		name string
		req  wrenn.ExecRequest
	}{
		{"empty cmd", wrenn.ExecRequest{}},
		{"missing dir", wrenn.ExecRequest{Cmd: "true", Dir: "/no/such/dir"}},
		{"dir is a file", wrenn.ExecRequest{Cmd: "true", Dir: "/etc/passwd"}},
		{"bad env", wrenn.ExecRequest{Cmd: "true", Env: map[string]string{"A=B": "c"}}},
		{"nul in arg", wrenn.ExecRequest{Cmd: "echo", Args: []string{"a\x00b"}}},
		{"negative timeout", wrenn.ExecRequest{Cmd: "true", Timeout: -1}},
		// execve refuses an argument of 128 KiB or more (MAX_ARG_STRLEN) with E2BIG.
		{"argument of 128 KiB", wrenn.ExecRequest{Cmd: "echo", Args: []string{strings.Repeat("a", 128<<10)}}},
		{"shell command of 128 KiB", wrenn.ExecRequest{Cmd: "echo " + strings.Repeat("a", 128<<10)}},
		// Arguments execve would take, in a request over a frame's limit.
		{"request over 1 MiB", wrenn.ExecRequest{Cmd: "echo", Args: slices.Repeat([]string{strings.Repeat("a", 100<<10)}, 11)}},
		{"request over 1 MiB once encoded", wrenn.ExecRequest{Cmd: "echo", Args: slices.Repeat([]string{strings.Repeat("\x01", 30<<10)}, 10)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := g.Exec(context.Background(), tt.req)
			if msg := wrenn.ErrorMessage(err); wrenn.ErrorCode(err) != wrenn.EInvalid || msg == "" || len(msg) > 1000 {
				t.Errorf("Exec: %.1000v, want a short %s error", err, wrenn.EInvalid)
			}
			st, err := g.StartExec(context.Background(), tt.req)
			if err == nil {
				st.Close()
			}
			if wrenn.ErrorCode(err) != wrenn.EInvalid || wrenn.ErrorMessage(err) == "" {
				t.Errorf("StartExec: %v, want an %s error", err, wrenn.EInvalid)
			}
		})
	}
}

// pidsOf parses the pids a command printed, one a line.
func pidsOf(t *testing.T, out []byte) []int {
	t.Helper()
	var pids []int
	for f := range strings.FieldsSeq(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("not a pid: %q in %q", f, out)
		}
		pids = append(pids, pid)
	}
	return pids
}

func TestExecTimeoutKillsGroup(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	start := time.Now()
	res := g.MustExec(t, wrenn.ExecRequest{Cmd: "sleep 100 & echo $!; echo $$; echo partial >&2; sleep 100", Timeout: 500 * time.Millisecond})
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
	if res.ExitCode != exitTimedOut {
		t.Errorf("exit code %d, want %d", res.ExitCode, exitTimedOut)
	}
	if !strings.Contains(string(res.Stderr), "partial\n") || !strings.Contains(string(res.Stderr), "timed out") {
		t.Errorf("stderr %q: want the partial output and the timeout note", res.Stderr)
	}
	pids := pidsOf(t, res.Stdout)
	if len(pids) != 2 {
		t.Fatalf("stdout %q: want the background pid and the shell's", res.Stdout)
	}
	for _, pid := range pids {
		eventually(t, 5*time.Second, "process "+strconv.Itoa(pid)+" killed", func() bool { return processGone(pid) })
	}
}

func TestExecOutputCapped(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	res := g.MustExec(t, wrenn.ExecRequest{Cmd: "head -c 20000000 /dev/zero; echo done >&2"})
	if len(res.Stdout) != MaxOutput {
		t.Errorf("stdout is %d bytes, want %d", len(res.Stdout), MaxOutput)
	}
	if !strings.Contains(string(res.Stderr), "done\n") || !strings.Contains(string(res.Stderr), "stdout truncated") {
		t.Errorf("stderr %q: want done and the truncation note", res.Stderr)
	}
	if res.ExitCode != 0 {
		t.Errorf("exit code %d", res.ExitCode)
	}
}

func TestExecCancelKillsGroup(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	pidFile := filepath.Join(t.TempDir(), "pids")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := g.Exec(ctx, wrenn.ExecRequest{Cmd: "sleep 100 & echo $! $$ > " + pidFile + "; sleep 100"})
		errc <- err
	}()
	var pids []int
	eventually(t, 5*time.Second, "pids written", func() bool {
		b, _ := os.ReadFile(pidFile)
		if !bytes.HasSuffix(b, []byte("\n")) {
			return false
		}
		pids = pidsOf(t, b)
		return true
	})
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Exec: %v, want context.Canceled", err)
	}
	for _, pid := range pids {
		eventually(t, 5*time.Second, "process "+strconv.Itoa(pid)+" killed", func() bool { return processGone(pid) })
	}
}

// collect reads a stream to its end.
func collect(t *testing.T, s *Stream) []wrenn.ExecEvent {
	t.Helper()
	var evs []wrenn.ExecEvent
	for {
		ev, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return evs
		}
		if err != nil {
			t.Fatalf("Recv after %d events: %v", len(evs), err)
		}
		evs = append(evs, ev)
	}
}

func TestStreamEvents(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	s, err := g.StartExec(context.Background(), wrenn.ExecRequest{Cmd: "echo out; echo err >&2; exit 2"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs := collect(t, s)
	if len(evs) < 3 || evs[0].Type != wrenn.ExecStarted || evs[0].PID <= 0 {
		t.Fatalf("events %+v: want start with a pid first", evs)
	}
	last := evs[len(evs)-1]
	if last.Type != wrenn.ExecExited || last.ExitCode != 2 {
		t.Errorf("last event %+v, want exit 2", last)
	}
	var out, errOut string
	for _, ev := range evs[1 : len(evs)-1] {
		switch ev.Type {
		case wrenn.ExecStdout:
			out += string(ev.Data)
		case wrenn.ExecStderr:
			errOut += string(ev.Data)
		default:
			t.Errorf("unexpected event %+v", ev)
		}
	}
	if out != "out\n" || errOut != "err\n" {
		t.Errorf("stdout %q, stderr %q", out, errOut)
	}
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("Recv after the end: %v, want io.EOF", err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("Stop after the end: %v", err)
	}
}

func TestStreamChunksWithoutNewlines(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	s, err := g.StartExec(context.Background(), wrenn.ExecRequest{Cmd: "printf abc; sleep 2; printf def"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	if ev, err := s.Recv(); err != nil || ev.Type != wrenn.ExecStarted {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	ev, err := s.Recv()
	if err != nil || ev.Type != wrenn.ExecStdout || string(ev.Data) != "abc" {
		t.Fatalf("second event %+v, %v: want stdout abc", ev, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("abc came after %s: output waited for more", took)
	}
}

func TestStreamFailedToStart(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	s, err := g.StartExec(context.Background(), wrenn.ExecRequest{Cmd: "no-such-program-envd", Args: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs := collect(t, s)
	if len(evs) != 1 || evs[0].Type != wrenn.ExecFailed || !strings.Contains(string(evs[0].Data), "not found") {
		t.Errorf("events %+v, want one failed event", evs)
	}
}

func TestStreamStop(t *testing.T) {
	t.Parallel()
	g := MustStart(t, withStopGrace(500*time.Millisecond))
	tests := []struct {
		name     string
		cmd      string
		exitCode int
	}{
		{"TERM ends it", `trap 'echo term; exit 7' TERM; echo ready; while :; do sleep 0.05; done`, 7},
		{"KILL after the grace period", `trap '' TERM; echo ready; while :; do sleep 0.05; done`, 128 + 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := g.StartExec(context.Background(), wrenn.ExecRequest{Cmd: tt.cmd})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for {
				ev, err := s.Recv()
				if err != nil {
					t.Fatal(err)
				}
				if ev.Type == wrenn.ExecStdout && strings.Contains(string(ev.Data), "ready") {
					break
				}
			}
			start := time.Now()
			if err := s.Stop(); err != nil {
				t.Fatal(err)
			}
			evs := collect(t, s)
			last := evs[len(evs)-1]
			if last.Type != wrenn.ExecExited || last.ExitCode != tt.exitCode {
				t.Errorf("last event %+v, want exit %d", last, tt.exitCode)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("stop took %s", took)
			}
		})
	}
}

func TestStreamCloseKills(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	s, err := g.StartExec(context.Background(), wrenn.ExecRequest{Cmd: "sleep 100 & echo $! $$; sleep 100"})
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for !bytes.HasSuffix(out, []byte("\n")) {
		ev, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == wrenn.ExecStdout {
			out = append(out, ev.Data...)
		}
	}
	s.Close()
	if _, err := s.Recv(); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("Recv after Close: %v, want an error", err)
	}
	for _, pid := range pidsOf(t, out) {
		eventually(t, 5*time.Second, "process "+strconv.Itoa(pid)+" killed", func() bool { return processGone(pid) })
	}
}

// TestStreamBackpressure checks that a host that does not read stalls the
// command instead of making envd buffer its output.
func TestStreamBackpressure(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	const total = 100 << 20
	s, err := g.StartExec(context.Background(), wrenn.ExecRequest{Cmd: "head", Args: []string{"-c", strconv.Itoa(total), "/dev/zero"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev, err := s.Recv()
	if err != nil || ev.Type != wrenn.ExecStarted {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	time.Sleep(500 * time.Millisecond)
	if processGone(ev.PID) {
		t.Fatalf("head wrote %d bytes nobody read and exited: envd buffered them", total)
	}
	var got int
	for _, ev := range collect(t, s) {
		got += len(ev.Data)
		if ev.Type == wrenn.ExecStdout && len(ev.Data) > outputChunkSize {
			t.Errorf("chunk of %d bytes, over %d", len(ev.Data), outputChunkSize)
		}
	}
	if got != total {
		t.Errorf("got %d bytes, want %d", got, total)
	}
}

func TestExecConcurrent(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	const n = 8
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res := g.MustExec(t, wrenn.ExecRequest{Cmd: "sleep 0.5; echo " + strconv.Itoa(i)})
			if want := strconv.Itoa(i) + "\n"; string(res.Stdout) != want {
				t.Errorf("exec %d: stdout %q, want %q", i, res.Stdout, want)
			}
		})
	}
	wg.Wait()
	if took := time.Since(start); took > n*500*time.Millisecond {
		t.Errorf("%d execs of 0.5 s took %s: not concurrent", n, took)
	}
}
