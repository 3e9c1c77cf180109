package control

import (
	"context"
	"time"

	"github.com/wrennhq/wrenn"
)

// ExecParams is a command as a client asks for it.
type ExecParams struct {
	Cmd        string
	Args       []string
	Env        map[string]string
	Dir        string
	TimeoutSec int // 0 means none
}

// request validates p and returns it as the agent takes it. The range is
// checked on the seconds the client gave: converted first, a number past
// the limit could wrap into one within it.
func (p ExecParams) request() (wrenn.ExecRequest, error) {
	switch {
	case p.Cmd == "":
		return wrenn.ExecRequest{}, wrenn.Errorf(wrenn.EInvalid, "cmd must not be empty")
	case p.TimeoutSec < 0 || p.TimeoutSec > MaxExecTimeoutSec:
		return wrenn.ExecRequest{}, wrenn.Errorf(wrenn.EInvalid,
			"timeout_sec must be between 0 (no timeout) and %d (a day)", MaxExecTimeoutSec)
	}
	return wrenn.ExecRequest{Cmd: p.Cmd, Args: p.Args, Env: p.Env, Dir: p.Dir,
		Timeout: time.Duration(p.TimeoutSec) * time.Second}, nil
}

// Exec runs a command to completion.
func (s *Service) Exec(ctx context.Context, teamID, id string, p ExecParams) (*wrenn.ExecResult, error) {
	req, err := p.request()
	if err != nil {
		return nil, err
	}
	sb, agent, err := s.running(ctx, teamID, id)
	if err != nil {
		return nil, err
	}
	req.Env = withDefaults(sb.Envs, req.Env)
	defer s.busy(ctx, sb)()
	res, err := agent.Exec(ctx, id, req)
	if err != nil {
		return nil, s.agentError(ctx, "run the command", id, err)
	}
	return res, nil
}

// StartExec starts a streamed command. The sandbox counts as active until
// the stream is closed.
func (s *Service) StartExec(ctx context.Context, teamID, id string, p ExecParams) (wrenn.ExecStream, error) {
	req, err := p.request()
	if err != nil {
		return nil, err
	}
	sb, agent, err := s.running(ctx, teamID, id)
	if err != nil {
		return nil, err
	}
	req.Env = withDefaults(sb.Envs, req.Env)
	done := s.busy(ctx, sb)
	st, err := agent.StartExec(ctx, id, req)
	if err != nil {
		done()
		return nil, s.agentError(ctx, "start the command", id, err)
	}
	return &busyStream{ExecStream: st, done: done}, nil
}
