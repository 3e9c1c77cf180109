package agentrpc

import (
	"context"
	"errors"
	"io"

	"connectrpc.com/connect"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agentrpc/agentv1"
)

// The background process RPCs, both ends. A Host that implements
// wrenn.Processes serves them; any other answers Unimplemented.

var _ wrenn.Processes = (*Client)(nil)

const noProcesses = "the host agent cannot run background processes"

// errNoProcesses answers the process RPCs on a host that cannot serve them.
var errNoProcesses = connect.NewError(connect.CodeUnimplemented, errors.New(noProcesses))

func (s *server) processes() (wrenn.Processes, error) {
	p, ok := s.host.(wrenn.Processes)
	if !ok {
		return nil, errNoProcesses
	}
	return p, nil
}

func (s *server) StartProcess(ctx context.Context, req *connect.Request[agentv1.StartProcessRequest]) (*connect.Response[agentv1.StartProcessResponse], error) {
	procs, err := s.processes()
	if err != nil {
		return nil, err
	}
	m := req.Msg
	p, err := procs.StartProcess(ctx, m.SandboxId, wrenn.ProcessRequest{Cmd: m.Cmd, Args: m.Args, Env: m.Env, Dir: m.Dir, Tag: m.Tag})
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.StartProcessResponse{Process: processToProto(p)}), nil
}

func (s *server) ListProcesses(ctx context.Context, req *connect.Request[agentv1.ListProcessesRequest]) (*connect.Response[agentv1.ListProcessesResponse], error) {
	procs, err := s.processes()
	if err != nil {
		return nil, err
	}
	ps, err := procs.ListProcesses(ctx, req.Msg.SandboxId)
	if err != nil {
		return nil, toConnect(err)
	}
	out := make([]*agentv1.ProcessInfo, len(ps))
	for i, p := range ps {
		out[i] = processToProto(p)
	}
	return connect.NewResponse(&agentv1.ListProcessesResponse{Processes: out}), nil
}

func (s *server) KillProcess(ctx context.Context, req *connect.Request[agentv1.KillProcessRequest]) (*connect.Response[agentv1.KillProcessResponse], error) {
	procs, err := s.processes()
	if err != nil {
		return nil, err
	}
	m := req.Msg
	if err := procs.KillProcess(ctx, m.SandboxId, selectorFromProto(m.Selector), wrenn.Signal(m.Signal)); err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.KillProcessResponse{}), nil
}

func (s *server) ConnectProcess(ctx context.Context, req *connect.Request[agentv1.ConnectProcessRequest], ss *connect.ServerStream[agentv1.ExecEvent]) error {
	procs, err := s.processes()
	if err != nil {
		return err
	}
	st, err := procs.ConnectProcess(ctx, req.Msg.SandboxId, selectorFromProto(req.Msg.Selector))
	if err != nil {
		return toConnect(err)
	}
	defer st.Close()
	for {
		ev, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return toConnect(err)
		}
		if err := ss.Send(&agentv1.ExecEvent{Type: string(ev.Type), Pid: int32(ev.PID), Data: ev.Data, ExitCode: int32(ev.ExitCode)}); err != nil {
			return err
		}
	}
}

// fromProcessConnect is fromConnect for the process RPCs, which an agent
// may not serve.
func fromProcessConnect(err error) error {
	if connect.CodeOf(err) == connect.CodeUnimplemented {
		return wrenn.Errorf(wrenn.EHostAgent, noProcesses)
	}
	return fromConnect(err)
}

// StartProcess implements wrenn.Processes.
func (c *Client) StartProcess(ctx context.Context, id string, req wrenn.ProcessRequest) (wrenn.Process, error) {
	resp, err := c.rpc.StartProcess(ctx, connect.NewRequest(&agentv1.StartProcessRequest{
		SandboxId: id, Cmd: req.Cmd, Args: req.Args, Env: req.Env, Dir: req.Dir, Tag: req.Tag}))
	if err != nil {
		return wrenn.Process{}, fromProcessConnect(err)
	}
	return processFromProto(resp.Msg.Process), nil
}

// ListProcesses implements wrenn.Processes.
func (c *Client) ListProcesses(ctx context.Context, id string) ([]wrenn.Process, error) {
	resp, err := c.rpc.ListProcesses(ctx, connect.NewRequest(&agentv1.ListProcessesRequest{SandboxId: id}))
	if err != nil {
		return nil, fromProcessConnect(err)
	}
	out := make([]wrenn.Process, len(resp.Msg.Processes))
	for i, p := range resp.Msg.Processes {
		out[i] = processFromProto(p)
	}
	return out, nil
}

// KillProcess implements wrenn.Processes.
func (c *Client) KillProcess(ctx context.Context, id string, sel wrenn.ProcessSelector, sig wrenn.Signal) error {
	_, err := c.rpc.KillProcess(ctx, connect.NewRequest(&agentv1.KillProcessRequest{
		SandboxId: id, Selector: selectorToProto(sel), Signal: string(sig)}))
	return fromProcessConnect(err)
}

// ConnectProcess implements wrenn.Processes. It returns once the agent has
// answered, so a process that is not there is an error here.
func (c *Client) ConnectProcess(ctx context.Context, id string, sel wrenn.ProcessSelector) (wrenn.ProcessStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	ss, err := c.rpc.ConnectProcess(ctx, connect.NewRequest(&agentv1.ConnectProcessRequest{SandboxId: id, Selector: selectorToProto(sel)}))
	if err != nil {
		cancel()
		return nil, fromProcessConnect(err)
	}
	if !ss.Receive() {
		err := ss.Err()
		ss.Close()
		cancel()
		if err == nil {
			err = errors.New("agent: process stream ended before its start")
		}
		return nil, fromProcessConnect(err)
	}
	return &processStream{ss: ss, cancel: cancel, first: ss.Msg()}, nil
}

type processStream struct {
	ss     *connect.ServerStreamForClient[agentv1.ExecEvent]
	cancel context.CancelFunc
	first  *agentv1.ExecEvent
}

func (s *processStream) Recv() (wrenn.ExecEvent, error) {
	m := s.first
	s.first = nil
	if m == nil {
		if !s.ss.Receive() {
			if err := s.ss.Err(); err != nil {
				return wrenn.ExecEvent{}, fromConnect(err)
			}
			return wrenn.ExecEvent{}, io.EOF
		}
		m = s.ss.Msg()
	}
	return wrenn.ExecEvent{Type: wrenn.ExecEventType(m.Type), PID: int(m.Pid), Data: m.Data, ExitCode: int(m.ExitCode)}, nil
}

// Close ends the stream; the process runs on.
func (s *processStream) Close() error {
	s.cancel()
	return s.ss.Close()
}

func processToProto(p wrenn.Process) *agentv1.ProcessInfo {
	return &agentv1.ProcessInfo{Pid: int32(p.PID), Tag: p.Tag, Cmd: p.Cmd, Args: p.Args, Running: p.Running, ExitCode: int32(p.ExitCode)}
}

func processFromProto(p *agentv1.ProcessInfo) wrenn.Process {
	if p == nil {
		return wrenn.Process{}
	}
	return wrenn.Process{PID: int(p.Pid), Tag: p.Tag, Cmd: p.Cmd, Args: p.Args, Running: p.Running, ExitCode: int(p.ExitCode)}
}

func selectorToProto(sel wrenn.ProcessSelector) *agentv1.ProcessSelector {
	return &agentv1.ProcessSelector{Pid: int32(min(sel.PID, 1<<31-1)), Tag: sel.Tag}
}

func selectorFromProto(sel *agentv1.ProcessSelector) wrenn.ProcessSelector {
	if sel == nil {
		return wrenn.ProcessSelector{}
	}
	return wrenn.ProcessSelector{PID: int(sel.Pid), Tag: sel.Tag}
}
