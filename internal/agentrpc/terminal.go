package agentrpc

import (
	"context"
	"errors"
	"io"
	"sync"

	"connectrpc.com/connect"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agentrpc/agentv1"
)

// The terminal RPC, both ends. A Host that implements wrenn.Terminals
// serves it; any other answers Unimplemented.

var _ wrenn.Terminals = (*Client)(nil)

const noTerminals = "the host agent cannot run terminals"

func (s *server) Terminal(ctx context.Context, bs *connect.BidiStream[agentv1.TerminalRequest, agentv1.TerminalEvent]) error {
	terms, ok := s.host.(wrenn.Terminals)
	if !ok {
		return connect.NewError(connect.CodeUnimplemented, errors.New(noTerminals))
	}
	first, err := bs.Receive()
	if err != nil {
		return toConnect(wrenn.Errorf(wrenn.EInvalid, "expected an open message"))
	}
	open := first.GetOpen()
	if open == nil {
		return toConnect(wrenn.Errorf(wrenn.EInvalid, "the first message must be an open"))
	}
	t, err := terms.OpenTerminal(ctx, open.SandboxId, wrenn.TerminalRequest{
		Tag: open.Tag, Cmd: open.Cmd, Args: open.Args, Env: open.Env, Dir: open.Dir, User: open.User,
		Cols: int(open.Cols), Rows: int(open.Rows),
	})
	if err != nil {
		return toConnect(err)
	}
	defer t.Close()
	go func() {
		// The caller's messages until it detaches: then the terminal is
		// let go, which ends Recv below.
		defer t.Close()
		for {
			m, err := bs.Receive()
			if err != nil {
				return
			}
			switch {
			case m.GetInput() != nil:
				err = t.Input(m.GetInput())
			case m.GetResize() != nil:
				err = t.Resize(int(m.GetResize().Cols), int(m.GetResize().Rows))
			case m.GetKill() != nil:
				err = t.Kill()
			}
			if err != nil && wrenn.ErrorCode(err) != wrenn.EInternal {
				return // a refusal the caller should have avoided; it sees the stream end
			}
		}
	}()
	for {
		ev, err := t.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return toConnect(err)
		}
		if err := bs.Send(&agentv1.TerminalEvent{Type: string(ev.Type), Tag: ev.Tag, Pid: int32(ev.PID), Data: ev.Data, ExitCode: int32(ev.ExitCode)}); err != nil {
			return err
		}
	}
}

// fromTerminalConnect is fromConnect for the terminal RPC, which an agent
// may not serve.
func fromTerminalConnect(err error) error {
	if connect.CodeOf(err) == connect.CodeUnimplemented {
		return wrenn.Errorf(wrenn.EHostAgent, noTerminals)
	}
	return fromConnect(err)
}

// OpenTerminal implements wrenn.Terminals.
func (c *Client) OpenTerminal(ctx context.Context, id string, req wrenn.TerminalRequest) (wrenn.Terminal, error) {
	ctx, cancel := context.WithCancel(ctx)
	bs := c.rpc.Terminal(ctx)
	open := &agentv1.TerminalOpen{SandboxId: id, Tag: req.Tag, Cmd: req.Cmd, Args: req.Args, Env: req.Env,
		Dir: req.Dir, User: req.User, Cols: int32(req.Cols), Rows: int32(req.Rows)}
	if err := bs.Send(&agentv1.TerminalRequest{Msg: &agentv1.TerminalRequest_Open{Open: open}}); err != nil && !errors.Is(err, io.EOF) {
		cancel()
		return nil, fromTerminalConnect(err)
	}
	// The started event, so that a refusal is an error here.
	first, err := bs.Receive()
	if err != nil {
		cancel()
		return nil, fromTerminalConnect(err)
	}
	t := &terminal{bs: bs, cancel: cancel, first: first}
	// As for exec streams: the agent sees the caller go once the request
	// side is closed.
	context.AfterFunc(ctx, t.closeSend)
	return t, nil
}

type terminal struct {
	bs     *connect.BidiStreamForClient[agentv1.TerminalRequest, agentv1.TerminalEvent]
	cancel context.CancelFunc
	first  *agentv1.TerminalEvent

	sendMu     sync.Mutex // connect allows one sender at a time
	sendClosed bool
}

func (t *terminal) Recv() (wrenn.TerminalEvent, error) {
	m := t.first
	t.first = nil
	if m == nil {
		var err error
		if m, err = t.bs.Receive(); err != nil {
			if errors.Is(err, io.EOF) {
				return wrenn.TerminalEvent{}, io.EOF
			}
			return wrenn.TerminalEvent{}, fromConnect(err)
		}
	}
	return wrenn.TerminalEvent{Type: wrenn.TerminalEventType(m.Type), Tag: m.Tag, PID: int(m.Pid), Data: m.Data, ExitCode: int(m.ExitCode)}, nil
}

func (t *terminal) send(m *agentv1.TerminalRequest) error {
	t.sendMu.Lock()
	defer t.sendMu.Unlock()
	if t.sendClosed {
		return wrenn.Errorf(wrenn.EConflict, "the terminal is detached")
	}
	if err := t.bs.Send(m); err != nil {
		return fromConnect(err)
	}
	return nil
}

func (t *terminal) Input(data []byte) error {
	return t.send(&agentv1.TerminalRequest{Msg: &agentv1.TerminalRequest_Input{Input: data}})
}

func (t *terminal) Resize(cols, rows int) error {
	if cols < 1 || cols > wrenn.MaxTerminalCols || rows < 1 || rows > wrenn.MaxTerminalRows {
		return wrenn.Errorf(wrenn.EInvalid, "cols must be between 1 and %d and rows between 1 and %d", wrenn.MaxTerminalCols, wrenn.MaxTerminalRows)
	}
	return t.send(&agentv1.TerminalRequest{Msg: &agentv1.TerminalRequest_Resize{Resize: &agentv1.TerminalSize{Cols: int32(cols), Rows: int32(rows)}}})
}

func (t *terminal) Kill() error {
	return t.send(&agentv1.TerminalRequest{Msg: &agentv1.TerminalRequest_Kill_{Kill: &agentv1.TerminalRequest_Kill{}}})
}

func (t *terminal) closeSend() {
	t.sendMu.Lock()
	defer t.sendMu.Unlock()
	if !t.sendClosed {
		t.sendClosed = true
		_ = t.bs.CloseRequest()
	}
}

// Close detaches; the terminal keeps running in the guest.
func (t *terminal) Close() error {
	t.cancel()
	t.closeSend()
	return t.bs.CloseResponse()
}
