package agentrpc

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agentrpc/agentv1"
	"github.com/wrennhq/wrenn/internal/agentrpc/agentv1/agentv1connect"
)

// Host is what the agent's server exposes: the sandbox manager. A Host
// that also implements wrenn.Snapshotter serves the pause, resume and
// snapshot RPCs; any other answers them with Unimplemented.
type Host interface {
	Info(ctx context.Context) (*wrenn.HostInfo, error)
	CreateSandbox(ctx context.Context, spec wrenn.SandboxSpec) (wrenn.SandboxNet, error)
	DestroySandbox(ctx context.Context, id string) error
	ListSandboxes(ctx context.Context) ([]wrenn.SandboxState, error)
	Exec(ctx context.Context, id string, req wrenn.ExecRequest) (*wrenn.ExecResult, error)
	StartExec(ctx context.Context, id string, req wrenn.ExecRequest) (wrenn.ExecStream, error)
	WriteFile(ctx context.Context, id, path string, r io.Reader) error
	ReadFile(ctx context.Context, id, path string) (io.ReadCloser, error)
}

// chunkSize is the most file data one message carries.
const chunkSize = 256 << 10

// Message size limits, each side bounding what it reads. A request holds
// at most a chunk of file data or a command, which the API takes as at
// most 1 MiB of JSON. An answer holds at most a blocking exec's output:
// wrenn.MaxExecOutput of each of stdout and stderr, plus the guest's notes.
const (
	maxRequest  = 4 << 20
	maxResponse = 2*wrenn.MaxExecOutput + 1<<20
)

// NewHandler returns the HTTP handler serving host over the RPC contract
// to callers presenting token.
func NewHandler(host Host, token string) http.Handler {
	path, h := agentv1connect.NewAgentServiceHandler(&server{host: host}, connect.WithReadMaxBytes(maxRequest), connect.WithSendMaxBytes(maxResponse))
	mux := http.NewServeMux()
	mux.Handle(path, requireToken(token, h))
	return mux
}

// requireToken admits requests bearing token, compared in constant time.
// An empty token never authenticates: with an empty token the agent admits
// no one.
func requireToken(token string, next http.Handler) http.Handler {
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || got == "" || len(want) == 0 || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"code":"unauthenticated","message":"bad agent token"}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type server struct {
	host Host
}

var _ agentv1connect.AgentServiceHandler = (*server)(nil)

func (s *server) GetHost(ctx context.Context, _ *connect.Request[agentv1.GetHostRequest]) (*connect.Response[agentv1.GetHostResponse], error) {
	info, err := s.host.Info(ctx)
	if err != nil {
		return nil, toConnect(err)
	}
	out := &agentv1.GetHostResponse{HostId: info.ID, Accel: info.Accel, StoreId: info.StoreID}
	for _, t := range info.Templates {
		out.Templates = append(out.Templates, &agentv1.BaseTemplate{Name: t.Name, SizeBytes: t.SizeBytes})
	}
	return connect.NewResponse(out), nil
}

func (s *server) CreateSandbox(ctx context.Context, req *connect.Request[agentv1.CreateSandboxRequest]) (*connect.Response[agentv1.CreateSandboxResponse], error) {
	m := req.Msg
	net, err := s.host.CreateSandbox(ctx, wrenn.SandboxSpec{
		ID: m.SandboxId, TeamID: m.TeamId, Template: m.Template, TemplateTeamID: m.TemplateTeamId,
		VCPUs: int(m.Vcpus), MemoryMB: int(m.MemoryMb), Network: networkFromProto(m.Network),
	})
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.CreateSandboxResponse{GuestIp: net.GuestIP, HostIp: net.HostIP}), nil
}

func (s *server) DestroySandbox(ctx context.Context, req *connect.Request[agentv1.DestroySandboxRequest]) (*connect.Response[agentv1.DestroySandboxResponse], error) {
	if err := s.host.DestroySandbox(ctx, req.Msg.SandboxId); err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.DestroySandboxResponse{}), nil
}

func (s *server) ListSandboxes(ctx context.Context, _ *connect.Request[agentv1.ListSandboxesRequest]) (*connect.Response[agentv1.ListSandboxesResponse], error) {
	states, err := s.host.ListSandboxes(ctx)
	if err != nil {
		return nil, toConnect(err)
	}
	out := &agentv1.ListSandboxesResponse{}
	for _, st := range states {
		out.Sandboxes = append(out.Sandboxes, &agentv1.SandboxState{SandboxId: st.ID, Running: st.Running, Paused: st.Paused, Unresponsive: st.Unresponsive})
	}
	return connect.NewResponse(out), nil
}

func execFromProto(m *agentv1.ExecRequest) wrenn.ExecRequest {
	return wrenn.ExecRequest{Cmd: m.Cmd, Args: m.Args, Env: m.Env, Dir: m.Dir, Timeout: time.Duration(m.TimeoutMs) * time.Millisecond}
}

func (s *server) Exec(ctx context.Context, req *connect.Request[agentv1.ExecRequest]) (*connect.Response[agentv1.ExecResponse], error) {
	res, err := s.host.Exec(ctx, req.Msg.SandboxId, execFromProto(req.Msg))
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.ExecResponse{
		Stdout: res.Stdout, Stderr: res.Stderr, ExitCode: int32(res.ExitCode), DurationMs: res.Duration.Milliseconds(),
	}), nil
}

func (s *server) ExecStream(ctx context.Context, bs *connect.BidiStream[agentv1.ExecStreamRequest, agentv1.ExecEvent]) error {
	first, err := bs.Receive()
	if err != nil {
		return toConnect(wrenn.Errorf(wrenn.EInvalid, "expected a start message"))
	}
	start := first.GetStart()
	if start == nil {
		return toConnect(wrenn.Errorf(wrenn.EInvalid, "the first message must be a start"))
	}
	st, err := s.host.StartExec(ctx, start.SandboxId, execFromProto(start))
	if err != nil {
		return toConnect(err)
	}
	defer st.Close()
	go func() {
		for {
			m, err := bs.Receive()
			if err != nil {
				return
			}
			if m.GetStop() != nil {
				_ = st.Stop()
			}
		}
	}()
	for {
		ev, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return toConnect(err)
		}
		if err := bs.Send(&agentv1.ExecEvent{Type: string(ev.Type), Pid: int32(ev.PID), Data: ev.Data, ExitCode: int32(ev.ExitCode)}); err != nil {
			return err
		}
	}
}

func (s *server) WriteFile(ctx context.Context, cs *connect.ClientStream[agentv1.WriteFileRequest]) (*connect.Response[agentv1.WriteFileResponse], error) {
	if !cs.Receive() {
		return nil, toConnect(wrenn.Errorf(wrenn.EInvalid, "expected a first message naming the file"))
	}
	first := cs.Msg()
	r := &streamReader{cs: cs, buf: first.Data}
	if err := s.host.WriteFile(ctx, first.SandboxId, first.Path, r); err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.WriteFileResponse{}), nil
}

// streamReader reads a client stream's file data as an io.Reader. A
// stream that ends in an error (the caller gave up) is an error, never EOF,
// so a cut-off upload is not taken for a whole file.
type streamReader struct {
	cs  *connect.ClientStream[agentv1.WriteFileRequest]
	buf []byte
}

func (r *streamReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if !r.cs.Receive() {
			if err := r.cs.Err(); err != nil {
				return 0, err
			}
			return 0, io.EOF
		}
		r.buf = r.cs.Msg().Data
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (s *server) ReadFile(ctx context.Context, req *connect.Request[agentv1.ReadFileRequest], ss *connect.ServerStream[agentv1.ReadFileResponse]) error {
	rc, err := s.host.ReadFile(ctx, req.Msg.SandboxId, req.Msg.Path)
	if err != nil {
		return toConnect(err)
	}
	defer rc.Close()
	// An empty first message says the file opened, so the client can tell
	// "not found" from a failure later in the transfer.
	if err := ss.Send(&agentv1.ReadFileResponse{}); err != nil {
		return err
	}
	buf := make([]byte, chunkSize)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if err := ss.Send(&agentv1.ReadFileResponse{Data: buf[:n]}); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return toConnect(err)
		}
	}
}

// errNoSnapshots answers the snapshot RPCs on a host that cannot serve them.
var errNoSnapshots = connect.NewError(connect.CodeUnimplemented, errors.New("this host agent cannot pause, resume or snapshot sandboxes"))

// snapshotter returns the host as a wrenn.Snapshotter, or the
// Unimplemented error when it is not one.
func (s *server) snapshotter() (wrenn.Snapshotter, error) {
	sn, ok := s.host.(wrenn.Snapshotter)
	if !ok {
		return nil, errNoSnapshots
	}
	return sn, nil
}

func (s *server) PauseSandbox(ctx context.Context, req *connect.Request[agentv1.PauseSandboxRequest]) (*connect.Response[agentv1.PauseSandboxResponse], error) {
	sn, err := s.snapshotter()
	if err != nil {
		return nil, err
	}
	if err := sn.PauseSandbox(ctx, req.Msg.SandboxId); err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.PauseSandboxResponse{}), nil
}

func (s *server) ResumeSandbox(ctx context.Context, req *connect.Request[agentv1.ResumeSandboxRequest]) (*connect.Response[agentv1.ResumeSandboxResponse], error) {
	sn, err := s.snapshotter()
	if err != nil {
		return nil, err
	}
	m := req.Msg
	net, err := sn.ResumeSandbox(ctx, wrenn.SandboxSpec{
		ID: m.SandboxId, TeamID: m.TeamId, Template: m.Template, TemplateTeamID: m.TemplateTeamId,
		VCPUs: int(m.Vcpus), MemoryMB: int(m.MemoryMb), Network: networkFromProto(m.Network),
	})
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.ResumeSandboxResponse{GuestIp: net.GuestIP, HostIp: net.HostIP}), nil
}

func (s *server) CreateSnapshot(ctx context.Context, req *connect.Request[agentv1.CreateSnapshotRequest]) (*connect.Response[agentv1.CreateSnapshotResponse], error) {
	sn, err := s.snapshotter()
	if err != nil {
		return nil, err
	}
	m := req.Msg
	t := &wrenn.Template{Name: m.Name, TeamID: m.TeamId, Type: wrenn.TemplateSnapshot, CreatedAt: timeFromUnixNano(m.CreatedAtUnixNs)}
	if err := sn.CreateSnapshot(ctx, m.SandboxId, t); err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.CreateSnapshotResponse{
		Vcpus: optInt32(t.VCPUs), MemoryMb: optInt32(t.MemoryMB), SizeBytes: t.SizeBytes,
	}), nil
}

func (s *server) DeleteSnapshot(ctx context.Context, req *connect.Request[agentv1.DeleteSnapshotRequest]) (*connect.Response[agentv1.DeleteSnapshotResponse], error) {
	sn, err := s.snapshotter()
	if err != nil {
		return nil, err
	}
	if err := sn.DeleteSnapshot(ctx, req.Msg.TeamId, req.Msg.Name); err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.DeleteSnapshotResponse{}), nil
}

func (s *server) ListSnapshots(ctx context.Context, _ *connect.Request[agentv1.ListSnapshotsRequest]) (*connect.Response[agentv1.ListSnapshotsResponse], error) {
	sn, err := s.snapshotter()
	if err != nil {
		return nil, err
	}
	ts, err := sn.ListSnapshots(ctx)
	if err != nil {
		return nil, toConnect(err)
	}
	out := &agentv1.ListSnapshotsResponse{}
	for _, t := range ts {
		out.Snapshots = append(out.Snapshots, &agentv1.SnapshotRef{TeamId: t.TeamID, Name: t.Name, CreatedAtUnixNs: unixNano(t.CreatedAt)})
	}
	return connect.NewResponse(out), nil
}

// timeFromUnixNano reads a wire time; 0 is the zero time.
func timeFromUnixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// optInt32 puts an optional int on the wire; nil stays absent.
func optInt32(v *int) *int32 {
	if v == nil {
		return nil
	}
	n := int32(*v)
	return &n
}
