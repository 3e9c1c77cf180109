package envd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/wrennhq/wrenn"
)

// Exit codes envd reports for what the command itself did not decide.
const (
	exitTimedOut      = 124 // the timeout passed, as timeout(1) reports
	exitNotExecutable = 126 // found but could not be executed, as shells report
	exitNotFound      = 127 // not found, as shells report
	exitSignalBase    = 128 // + the signal that ended the command, as shells report
)

// exec runs one command for the host: start, output, exit.
func (s *server) exec(ctx context.Context, p *peer, m *execParams) {
	if m == nil {
		p.reply(wrenn.Errorf(wrenn.EInvalid, "exec needs parameters"))
		return
	}
	cmd, err := command(m)
	if err != nil {
		s.execFailed(ctx, p, m, err)
		return
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		s.answer(ctx, p, fmt.Errorf("exec: pipe: %w", err))
		return
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		s.answer(ctx, p, fmt.Errorf("exec: pipe: %w", err))
		return
	}
	defer outR.Close()
	defer errR.Close()
	cmd.Stdout, cmd.Stderr = outW, errW
	started := time.Now()
	err = startProcess(cmd.Start)
	outW.Close()
	errW.Close()
	if err != nil {
		s.execFailed(ctx, p, m, startFailure(program(cmd), err))
		return
	}

	log := s.log.With(slog.Int(attrPID, cmd.Process.Pid))
	pr := &process{pid: cmd.Process.Pid, grace: s.stopGrace, log: log}
	log.DebugContext(ctx, "exec started", slog.String(attrCmd, m.Cmd))
	if !m.NoStart {
		if err := p.send(message{Type: msgStart, PID: pr.pid}); err != nil {
			// The host is gone: watch sees it too, and kills the command.
			log.DebugContext(ctx, "send start", slog.Any(attrError, err))
		}
	}
	p.watch(func(m message) {
		if m.Type == msgStop {
			pr.stop()
		}
	}, func() { pr.signal(syscall.SIGKILL) }) // the host went away
	if m.TimeoutNS > 0 {
		pr.timer = time.AfterFunc(time.Duration(m.TimeoutNS), pr.timeout)
	}

	out := &pump{p: p, log: log, typ: frameStdout, limit: m.OutputLimit}
	errOut := &pump{p: p, log: log, typ: frameStderr, limit: m.OutputLimit}
	var pumps sync.WaitGroup
	pumps.Go(func() { out.run(outR) })
	pumps.Go(func() { errOut.run(errR) })
	werr := cmd.Wait()
	elapsed := time.Since(started)
	timedOut := pr.exited()

	// Children that inherited the pipes may keep writing; give them a
	// moment, then stop listening (they get EPIPE).
	if !waitFor(&pumps, s.waitDelay) {
		outR.Close()
		errR.Close()
		pumps.Wait()
	}

	exit := message{Type: msgExit, DurationNS: int64(elapsed), TimedOut: timedOut,
		StdoutTruncated: out.truncated, StderrTruncated: errOut.truncated}
	switch {
	case timedOut:
		exit.ExitCode = exitTimedOut
	case cmd.ProcessState != nil:
		exit.ExitCode = exitCode(cmd.ProcessState)
	default:
		log.WarnContext(ctx, "exec: wait", slog.Any(attrError, werr))
		s.answer(ctx, p, fmt.Errorf("exec: wait: %w", werr))
		return
	}
	errOut.note(notes(exit, time.Duration(m.TimeoutNS), m.OutputLimit))
	if err := p.send(exit); err != nil {
		log.DebugContext(ctx, "send exit", slog.Any(attrError, err))
	}
	log.DebugContext(ctx, "exec exited", slog.Int(attrCode, exit.ExitCode))
}

// execFailed answers a command that could not start: a startError is the
// command's result, anything else an error.
func (s *server) execFailed(ctx context.Context, p *peer, m *execParams, err error) {
	if se, ok := errors.AsType[*startError](err); ok {
		s.log.DebugContext(ctx, "exec failed", slog.String(attrCmd, m.Cmd), slog.String(attrError, se.msg))
		if err := p.send(message{Type: msgFailed, Message: se.msg, ExitCode: se.code}); err != nil {
			s.log.DebugContext(ctx, "send the failed event", slog.Any(attrError, err))
		}
		return
	}
	s.answer(ctx, p, err)
}

// notes are what envd adds to stderr so a result says why it is cut short.
func notes(exit message, timeout time.Duration, limit int64) string {
	var s string
	if exit.StdoutTruncated {
		s += fmt.Sprintf("envd: stdout truncated to %d bytes\n", limit)
	}
	if exit.StderrTruncated {
		s += fmt.Sprintf("envd: stderr truncated to %d bytes\n", limit)
	}
	if exit.TimedOut {
		s += fmt.Sprintf("envd: timed out after %s; killed its process group\n", timeout)
	}
	return s
}

// waitFor waits for wg up to d and reports whether it finished.
func waitFor(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitSignalBase + int(ws.Signal())
	}
	return ps.ExitCode()
}

// process is a running command's process group, signalled by timeout,
// Stop and the host going away, until its leader has been reaped.
type process struct {
	pid   int
	grace time.Duration
	log   *slog.Logger

	mu       sync.Mutex
	done     bool        // the leader has exited: signal no more
	timedOut bool        // the timeout killed the group
	timer    *time.Timer // the timeout
	killer   *time.Timer // SIGKILL after Stop's grace period
}

// signal sends sig to the whole group while the leader runs.
func (pr *process) signal(sig syscall.Signal) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if !pr.done {
		pr.kill(sig)
	}
}

func (pr *process) timeout() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if !pr.done {
		pr.timedOut = true
		pr.kill(syscall.SIGKILL)
	}
}

// stop sends SIGTERM now and SIGKILL after the grace period.
func (pr *process) stop() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.done || pr.killer != nil {
		return
	}
	pr.kill(syscall.SIGTERM)
	pr.killer = time.AfterFunc(pr.grace, func() { pr.signal(syscall.SIGKILL) })
}

// kill sends sig to the group. A group with no member left (ESRCH) is no
// failure; anything else is logged.
func (pr *process) kill(sig syscall.Signal) {
	if err := syscall.Kill(-pr.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		pr.log.Warn("signal the process group", slog.String(attrSignal, sig.String()), slog.Any(attrError, err))
	}
}

// exited marks the leader reaped and reports whether the timeout killed it.
func (pr *process) exited() (timedOut bool) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.done = true
	if pr.timer != nil {
		pr.timer.Stop()
	}
	if pr.killer != nil {
		pr.killer.Stop()
	}
	return pr.timedOut
}

// pump sends one of a command's outputs to the host as it comes, in chunks
// of at most outputChunkSize. A host that does not read blocks the pump,
// and so the command, instead of making envd buffer.
type pump struct {
	p         *peer
	log       *slog.Logger
	typ       byte
	limit     int64 // 0: no limit
	sent      int64
	broken    bool // the host is gone: drain, drop
	truncated bool
}

// outputBufs hold the pumps' buffers between commands: under emulation
// clearing a new one for every command, and collecting it after, costs
// the guest more than many commands' output.
var outputBufs = sync.Pool{New: func() any { return new([frameHeaderSize + outputChunkSize]byte) }}

func (u *pump) run(r *os.File) {
	b := outputBufs.Get().(*[frameHeaderSize + outputChunkSize]byte)
	defer outputBufs.Put(b)
	buf := b[:]
	for {
		n, err := r.Read(buf[frameHeaderSize:])
		if n > 0 {
			u.send(buf, n)
		}
		if err != nil {
			// EOF: every writer closed the pipe; closed: exec stopped
			// listening to children that kept it open.
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				u.log.Warn("read command output", slog.Any(attrError, err))
			}
			return
		}
	}
}

// send sends the n bytes after the header room of buf, within the limit.
func (u *pump) send(buf []byte, n int) {
	if u.limit > 0 && u.sent+int64(n) > u.limit {
		n = int(u.limit - u.sent)
		u.truncated = true
	}
	if n == 0 || u.broken {
		return
	}
	putHeader(buf, u.typ, n)
	if _, err := u.p.st.Write(buf[:frameHeaderSize+n]); err != nil {
		u.gone(err)
	}
	u.sent += int64(n)
}

// note sends text past the limit: envd's own words about the output.
func (u *pump) note(text string) {
	if text == "" || u.broken {
		return
	}
	if err := writeFrame(u.p.st, u.typ, []byte(text)); err != nil {
		u.gone(err)
	}
}

// gone marks the host gone: the rest of the output is drained and dropped.
func (u *pump) gone(err error) {
	u.broken = true
	u.log.Debug("send command output: host gone", slog.Any(attrError, err))
}
