package mock

import (
	"context"

	"github.com/wrennhq/wrenn"
)

var _ wrenn.Terminals = (*TerminalAgent)(nil)

// TerminalAgent is a fake host agent that also runs terminals.
type TerminalAgent struct {
	*Agent
	OpenTerminalFn func(ctx context.Context, id string, req wrenn.TerminalRequest) (wrenn.Terminal, error)
}

func (a *TerminalAgent) OpenTerminal(ctx context.Context, id string, req wrenn.TerminalRequest) (wrenn.Terminal, error) {
	if a.OpenTerminalFn == nil {
		return nil, unset("OpenTerminalFn")
	}
	return a.OpenTerminalFn(ctx, id, req)
}
