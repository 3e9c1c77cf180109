package control

import (
	"context"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/wrennhq/wrenn"
)

// The background process use cases: start, list, kill and stream the
// processes of a running sandbox of the caller's team. The guest keeps
// them (and their output) across pauses and host agent restarts; the
// control plane keeps nothing. A stream counts as activity while it is
// connected; a process running on its own does not keep its sandbox awake.

// MaxTagLen bounds a background process's tag.
const MaxTagLen = 128

// CheckTag checks a tag a client gives a background process: text a
// selector can name, so not a number (that is a pid).
func CheckTag(tag string) error {
	switch {
	case len(tag) > MaxTagLen:
		return wrenn.Errorf(wrenn.EInvalid, "tag must be at most %d bytes", MaxTagLen)
	case !utf8.ValidString(tag) || strings.ContainsFunc(tag, func(r rune) bool { return r == '/' || unicode.IsControl(r) }):
		return wrenn.Errorf(wrenn.EInvalid, "tag must be text without '/' or control characters")
	}
	if _, err := strconv.Atoi(tag); err == nil {
		return wrenn.Errorf(wrenn.EInvalid, "tag must not be a number: a number selects a process by pid")
	}
	return nil
}

// ParseSelector reads a process selector as the API takes it: a pid in
// decimal, or else a tag. A selector that cannot name a process is not
// found, as one naming no process is.
func ParseSelector(s string) (wrenn.ProcessSelector, error) {
	if s == "" || len(s) > MaxTagLen {
		return wrenn.ProcessSelector{}, wrenn.Errorf(wrenn.ENotFound, "no background process %q", truncate(s, 64))
	}
	if s[0] >= '0' && s[0] <= '9' {
		pid, err := strconv.ParseInt(s, 10, 32)
		if err != nil || pid <= 0 {
			return wrenn.ProcessSelector{}, wrenn.Errorf(wrenn.ENotFound, "no background process %q", truncate(s, 64))
		}
		return wrenn.ProcessSelector{PID: int(pid)}, nil
	}
	return wrenn.ProcessSelector{Tag: s}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// processes finds the caller's running sandbox and its agent's processes.
func (s *Service) processes(ctx context.Context, teamID, id string) (*wrenn.Sandbox, wrenn.Processes, error) {
	sb, agent, err := s.running(ctx, teamID, id)
	if err != nil {
		return nil, nil, err
	}
	procs, ok := agent.(wrenn.Processes)
	if !ok {
		return nil, nil, wrenn.Errorf(wrenn.EHostAgent, "the host agent cannot run background processes")
	}
	return sb, procs, nil
}

// StartProcess starts a background process: p as for Exec, in the
// sandbox's default environment as Exec is (its timeout is ignored: a
// background process runs until it ends or is killed), named tag, or a
// tag the guest makes up when tag is empty.
func (s *Service) StartProcess(ctx context.Context, teamID, id string, p ExecParams, tag string) (wrenn.Process, error) {
	p.TimeoutSec = 0
	req, err := p.request()
	if err != nil {
		return wrenn.Process{}, err
	}
	if err := CheckTag(tag); err != nil {
		return wrenn.Process{}, err
	}
	sb, procs, err := s.processes(ctx, teamID, id)
	if err != nil {
		return wrenn.Process{}, err
	}
	defer s.busy(ctx, sb)()
	env := withDefaults(sb.Envs, req.Env) // the sandbox's envs, then the request's
	proc, err := procs.StartProcess(ctx, id, wrenn.ProcessRequest{Cmd: req.Cmd, Args: req.Args, Env: env, Dir: req.Dir, Tag: tag})
	if err != nil {
		return wrenn.Process{}, s.agentError(ctx, "start the process", id, err)
	}
	return proc, nil
}

// ListProcesses lists the sandbox's running background processes, in the
// order they started.
func (s *Service) ListProcesses(ctx context.Context, teamID, id string) ([]wrenn.Process, error) {
	sb, procs, err := s.processes(ctx, teamID, id)
	if err != nil {
		return nil, err
	}
	defer s.busy(ctx, sb)()
	ps, err := procs.ListProcesses(ctx, id)
	if err != nil {
		return nil, s.agentError(ctx, "list the processes", id, err)
	}
	running := ps[:0]
	for _, p := range ps {
		if p.Running {
			running = append(running, p)
		}
	}
	return running, nil
}

// KillProcess ends a running background process's group: SIGTERM, then
// SIGKILL after a grace period, unless sig is SIGKILL (at once). An empty
// sig is SIGTERM. It returns once the process has exited.
func (s *Service) KillProcess(ctx context.Context, teamID, id string, sel wrenn.ProcessSelector, sig wrenn.Signal) error {
	switch sig {
	case "":
		sig = wrenn.SIGTERM
	case wrenn.SIGTERM, wrenn.SIGKILL:
	default:
		return wrenn.Errorf(wrenn.EInvalid, "signal must be SIGTERM or SIGKILL")
	}
	sb, procs, err := s.processes(ctx, teamID, id)
	if err != nil {
		return err
	}
	defer s.busy(ctx, sb)()
	if err := procs.KillProcess(ctx, id, sel, sig); err != nil {
		return s.agentError(ctx, "kill the process", id, err)
	}
	return nil
}

// ConnectProcess streams a background process's output: what the guest
// holds of it, then live output and its exit. The sandbox counts as
// active until the stream is closed.
func (s *Service) ConnectProcess(ctx context.Context, teamID, id string, sel wrenn.ProcessSelector) (wrenn.ProcessStream, error) {
	sb, procs, err := s.processes(ctx, teamID, id)
	if err != nil {
		return nil, err
	}
	done := s.busy(ctx, sb)
	st, err := procs.ConnectProcess(ctx, id, sel)
	if err != nil {
		done()
		return nil, s.agentError(ctx, "connect to the process", id, err)
	}
	return &busyProcessStream{ProcessStream: st, done: done}, nil
}

// busyProcessStream keeps its sandbox active until it is closed.
type busyProcessStream struct {
	wrenn.ProcessStream
	done func()
}

func (b *busyProcessStream) Close() error {
	defer b.done()
	return b.ProcessStream.Close()
}
