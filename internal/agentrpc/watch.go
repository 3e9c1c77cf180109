package agentrpc

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agentrpc/agentv1"
)

// The watch RPC, both ends. A Host that implements wrenn.Watcher serves
// it; any other answers Unimplemented.

var _ wrenn.Watcher = (*Client)(nil)

var errNoWatcher = connect.NewError(connect.CodeUnimplemented, errors.New("this host agent cannot watch a sandbox's files"))

func (s *server) WatchDir(ctx context.Context, req *connect.Request[agentv1.WatchDirRequest], ss *connect.ServerStream[agentv1.WatchDirResponse]) error {
	wt, ok := s.host.(wrenn.Watcher)
	if !ok {
		return errNoWatcher
	}
	w, err := wt.WatchDir(ctx, req.Msg.SandboxId, req.Msg.Path, req.Msg.Recursive)
	if err != nil {
		return toConnect(err)
	}
	defer w.Close()
	stop := context.AfterFunc(ctx, func() { w.Close() }) // the client went away
	defer stop()
	// An empty first message says the watch is in place.
	if err := ss.Send(&agentv1.WatchDirResponse{}); err != nil {
		return err
	}
	for {
		e, err := w.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return toConnect(err)
		}
		if err := ss.Send(&agentv1.WatchDirResponse{Events: []*agentv1.FileEvent{{Op: e.Op, Path: e.Path}}}); err != nil {
			return err
		}
	}
}

// WatchDir implements wrenn.Watcher.
func (c *Client) WatchDir(ctx context.Context, id, path string, recursive bool) (wrenn.FileWatch, error) {
	ctx, cancel := context.WithCancel(ctx)
	ss, err := c.rpc.WatchDir(ctx, connect.NewRequest(&agentv1.WatchDirRequest{SandboxId: id, Path: path, Recursive: recursive}))
	if err != nil {
		cancel()
		return nil, fromConnect(err)
	}
	if !ss.Receive() {
		err := ss.Err()
		if err == nil {
			err = errors.New("agent closed the watch before it began")
		}
		cancel()
		ss.Close()
		return nil, fromConnect(err)
	}
	return &rpcWatch{ss: ss, cancel: cancel}, nil
}

type rpcWatch struct {
	ss      *connect.ServerStreamForClient[agentv1.WatchDirResponse]
	cancel  context.CancelFunc
	pending []*agentv1.FileEvent
}

func (w *rpcWatch) Recv() (wrenn.FileEvent, error) {
	for len(w.pending) == 0 {
		if !w.ss.Receive() {
			err := w.ss.Err()
			if err == nil {
				err = errors.New("agent ended the watch")
			}
			return wrenn.FileEvent{}, fromConnect(err)
		}
		w.pending = w.ss.Msg().Events
	}
	e := w.pending[0]
	w.pending = w.pending[1:]
	return wrenn.FileEvent{Op: e.Op, Path: e.Path}, nil
}

func (w *rpcWatch) Close() error {
	w.cancel()
	return w.ss.Close()
}
