package control

import (
	"context"
	"strings"

	"github.com/wrennhq/wrenn"
)

// TerminalParams is a terminal as a client asks for it: a new one (Tag
// empty), or the one tagged Tag to attach to again.
type TerminalParams struct {
	Tag  string
	Cmd  string
	Args []string
	// Env is the client's environment for a new terminal's program.
	Env  map[string]string
	Dir  string
	User string
	Cols int // 0: the default
	Rows int // 0: the default
}

// maxTagLen bounds a tag a client names; the guest's are 12 bytes.
const maxTagLen = 64

func (p TerminalParams) request() (wrenn.TerminalRequest, error) {
	if p.Tag != "" {
		if len(p.Tag) > maxTagLen || strings.ContainsRune(p.Tag, 0) {
			return wrenn.TerminalRequest{}, wrenn.Errorf(wrenn.ENotFound, "no terminal %q in this sandbox", p.Tag)
		}
		return wrenn.TerminalRequest{Tag: p.Tag}, nil
	}
	if p.Cols < 0 || p.Cols > wrenn.MaxTerminalCols || p.Rows < 0 || p.Rows > wrenn.MaxTerminalRows {
		return wrenn.TerminalRequest{}, wrenn.Errorf(wrenn.EInvalid,
			"cols must be between 1 and %d and rows between 1 and %d", wrenn.MaxTerminalCols, wrenn.MaxTerminalRows)
	}
	return wrenn.TerminalRequest{Cmd: p.Cmd, Args: p.Args, Env: p.Env, Dir: p.Dir, User: p.User, Cols: p.Cols, Rows: p.Rows}, nil
}

// OpenTerminal starts a terminal in the caller's running sandbox, or
// attaches to one of its terminals. The sandbox counts as active while the
// terminal is attached, until Close.
func (s *Service) OpenTerminal(ctx context.Context, teamID, id string, p TerminalParams) (wrenn.Terminal, error) {
	req, err := p.request()
	if err != nil {
		return nil, err
	}
	sb, agent, err := s.running(ctx, teamID, id)
	if err != nil {
		return nil, err
	}
	terms, ok := agent.(wrenn.Terminals)
	if !ok {
		return nil, wrenn.Errorf(wrenn.EHostAgent, "the host agent cannot run terminals")
	}
	if req.Tag == "" {
		req.Env = withDefaults(sb.Envs, req.Env) // the sandbox's envs, then the client's
	}
	done := s.busy(ctx, sb)
	t, err := terms.OpenTerminal(ctx, id, req)
	if err != nil {
		done()
		return nil, s.agentError(ctx, "open the terminal", id, err)
	}
	return &busyTerminal{Terminal: t, done: done}, nil
}

// busyTerminal is an attached terminal that keeps its sandbox active until
// it is closed.
type busyTerminal struct {
	wrenn.Terminal
	done func()
}

func (b *busyTerminal) Close() error {
	defer b.done()
	return b.Terminal.Close()
}
