package agent

import (
	"context"
	"errors"
	"io"

	"github.com/wrennhq/wrenn"
)

var _ wrenn.Terminals = (*Manager)(nil)

// OpenTerminal starts a terminal in a running sandbox, or attaches to one.
// The terminal lives in the guest: it outlives this attachment, a restart
// of this agent and a pause of the sandbox.
func (m *Manager) OpenTerminal(ctx context.Context, id string, req wrenn.TerminalRequest) (wrenn.Terminal, error) {
	sb, c, err := m.client(id)
	if err != nil {
		return nil, err
	}
	t, err := c.OpenTerminal(ctx, req)
	if err != nil {
		return nil, explain(sb, err)
	}
	return &terminal{Terminal: t, sb: sb}, nil
}

// terminal explains a terminal stream that a pause, snapshot or destroy
// cut off as the conflict it is.
type terminal struct {
	wrenn.Terminal
	sb *sandbox
}

func (t *terminal) Recv() (wrenn.TerminalEvent, error) {
	ev, err := t.Terminal.Recv()
	return ev, explainStream(t.sb, err)
}

// explainStream is explain for a stream's error; its end (io.EOF) is none.
func explainStream(sb *sandbox, err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	return explain(sb, err)
}
