package agentrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agentrpc/agentv1"
	"github.com/wrennhq/wrenn/internal/agentrpc/agentv1/agentv1connect"
)

var (
	_ wrenn.Agent       = (*Client)(nil)
	_ wrenn.Snapshotter = (*Client)(nil)
)

// Client is the control plane's connection to one host agent.
type Client struct {
	rpc agentv1connect.AgentServiceClient
}

// Dial returns a client of the agent at addr, "unix:/path" or "host:port",
// speaking HTTP/2 without TLS and presenting token.
func Dial(addr, token string) *Client {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protocols, MaxIdleConns: 16, IdleConnTimeout: time.Minute, HTTP2: fileFrames()}
	base := "http://" + addr
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
		base = "http://agent"
	}
	hc := &http.Client{Transport: &bearer{token: token, next: tr}}
	return &Client{rpc: agentv1connect.NewAgentServiceClient(hc, base,
		connect.WithReadMaxBytes(maxResponse), connect.WithSendMaxBytes(maxRequest), noGzip())}
}

// fileFrames lets the agent send file data in frames as large as the
// messages that carry it (issue 14): with HTTP/2's default of 16 KiB a
// download crossed the connection in sixteen times as many frames as an
// upload, whose frames the agent's server already allows up to 1 MiB,
// and ran at less than half its speed.
func fileFrames() *http.HTTP2Config {
	return &http.HTTP2Config{MaxReadFrameSize: 1 << 20, MaxReceiveBufferPerStream: 4 << 20}
}

// noGzip stops the client asking the agent for gzip (issue 14): the
// agent compressed every 256 KiB message of a download, most of its CPU
// in a transfer, for a link between two processes or two hosts of one
// fleet, where the bytes cost far less than compressing them.
func noGzip() connect.ClientOption { return connect.WithAcceptCompression("gzip", nil, nil) }

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// Info describes the agent's host.
func (c *Client) Info(ctx context.Context) (*wrenn.HostInfo, error) {
	resp, err := c.rpc.GetHost(ctx, connect.NewRequest(&agentv1.GetHostRequest{}))
	if err != nil {
		return nil, fromConnect(err)
	}
	info := &wrenn.HostInfo{ID: resp.Msg.HostId, Accel: resp.Msg.Accel, StoreID: resp.Msg.StoreId}
	for _, t := range resp.Msg.Templates {
		info.Templates = append(info.Templates, wrenn.Template{Name: t.Name, Type: wrenn.TemplateBase, SizeBytes: t.SizeBytes})
	}
	return info, nil
}

// CreateSandbox implements wrenn.Lifecycle.
func (c *Client) CreateSandbox(ctx context.Context, spec wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
	resp, err := c.rpc.CreateSandbox(ctx, connect.NewRequest(&agentv1.CreateSandboxRequest{
		SandboxId: spec.ID, TeamId: spec.TeamID, Template: spec.Template, TemplateTeamId: spec.TemplateTeamID,
		Vcpus: int32(spec.VCPUs), MemoryMb: int32(spec.MemoryMB), Network: networkToProto(spec.Network),
	}))
	if err != nil {
		return wrenn.SandboxNet{}, fromConnect(err)
	}
	return wrenn.SandboxNet{GuestIP: resp.Msg.GuestIp, HostIP: resp.Msg.HostIp}, nil
}

// DestroySandbox implements wrenn.Lifecycle.
func (c *Client) DestroySandbox(ctx context.Context, id string) error {
	_, err := c.rpc.DestroySandbox(ctx, connect.NewRequest(&agentv1.DestroySandboxRequest{SandboxId: id}))
	return fromConnect(err)
}

// ListSandboxes reports the sandboxes the agent holds.
func (c *Client) ListSandboxes(ctx context.Context) ([]wrenn.SandboxState, error) {
	resp, err := c.rpc.ListSandboxes(ctx, connect.NewRequest(&agentv1.ListSandboxesRequest{}))
	if err != nil {
		return nil, fromConnect(err)
	}
	out := make([]wrenn.SandboxState, len(resp.Msg.Sandboxes))
	for i, s := range resp.Msg.Sandboxes {
		out[i] = wrenn.SandboxState{ID: s.SandboxId, Running: s.Running, Paused: s.Paused, Unresponsive: s.Unresponsive}
	}
	return out, nil
}

func execToProto(id string, req wrenn.ExecRequest) *agentv1.ExecRequest {
	return &agentv1.ExecRequest{SandboxId: id, Cmd: req.Cmd, Args: req.Args, Env: req.Env, Dir: req.Dir, TimeoutMs: req.Timeout.Milliseconds()}
}

// Exec implements wrenn.Runner.
func (c *Client) Exec(ctx context.Context, id string, req wrenn.ExecRequest) (*wrenn.ExecResult, error) {
	resp, err := c.rpc.Exec(ctx, connect.NewRequest(execToProto(id, req)))
	if err != nil {
		return nil, fromConnect(err)
	}
	m := resp.Msg
	return &wrenn.ExecResult{Stdout: m.Stdout, Stderr: m.Stderr, ExitCode: int(m.ExitCode), Duration: time.Duration(m.DurationMs) * time.Millisecond}, nil
}

// StartExec implements wrenn.Runner.
func (c *Client) StartExec(ctx context.Context, id string, req wrenn.ExecRequest) (wrenn.ExecStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	bs := c.rpc.ExecStream(ctx)
	if err := bs.Send(&agentv1.ExecStreamRequest{Msg: &agentv1.ExecStreamRequest_Start{Start: execToProto(id, req)}}); err != nil {
		cancel()
		return nil, fromConnect(err)
	}
	// Wait for the first event, so a sandbox that cannot run the command
	// fails here rather than mid-stream.
	first, err := bs.Receive()
	if err != nil {
		cancel()
		return nil, fromConnect(err)
	}
	s := &stream{bs: bs, cancel: cancel, first: first}
	// HTTP/2 resets a stream whose context ends only once its request
	// side is closed: close it then, so that the agent's handler sees the
	// caller go and ends the command.
	context.AfterFunc(ctx, s.closeSend)
	return s, nil
}

type stream struct {
	bs     *connect.BidiStreamForClient[agentv1.ExecStreamRequest, agentv1.ExecEvent]
	cancel context.CancelFunc
	first  *agentv1.ExecEvent

	sendMu     sync.Mutex // connect allows one sender at a time
	sendClosed bool
}

func (s *stream) Recv() (wrenn.ExecEvent, error) {
	m := s.first
	s.first = nil
	if m == nil {
		var err error
		if m, err = s.bs.Receive(); err != nil {
			if errors.Is(err, io.EOF) {
				return wrenn.ExecEvent{}, io.EOF
			}
			return wrenn.ExecEvent{}, fromConnect(err)
		}
	}
	return wrenn.ExecEvent{Type: wrenn.ExecEventType(m.Type), PID: int(m.Pid), Data: m.Data, ExitCode: int(m.ExitCode)}, nil
}

func (s *stream) Stop() error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.sendClosed {
		return nil // going away: the agent ends the command
	}
	return fromConnect(s.bs.Send(&agentv1.ExecStreamRequest{Msg: &agentv1.ExecStreamRequest_Stop_{Stop: &agentv1.ExecStreamRequest_Stop{}}}))
}

func (s *stream) closeSend() {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if !s.sendClosed {
		s.sendClosed = true
		_ = s.bs.CloseRequest()
	}
}

// Close ends the stream; the agent kills the command if it still runs.
func (s *stream) Close() error {
	s.cancel()
	s.closeSend()
	return s.bs.CloseResponse()
}

// WriteFile implements wrenn.Files. Only io.EOF from r ends the file: if
// r fails in any other way (io.ErrUnexpectedEOF included: a request body
// cut short), the stream is cut so the agent never completes the file,
// and WriteFile returns r's error.
func (c *Client) WriteFile(ctx context.Context, id, path string, r io.Reader) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs := c.rpc.WriteFile(ctx)
	if err := cs.Send(&agentv1.WriteFileRequest{SandboxId: id, Path: path}); err != nil && !errors.Is(err, io.EOF) {
		return fromConnect(err)
	}
	buf := make([]byte, chunkSize)
	for {
		n, rerr := fill(r, buf)
		if n > 0 {
			if err := cs.Send(&agentv1.WriteFileRequest{Data: buf[:n]}); err != nil {
				if errors.Is(err, io.EOF) {
					break // the server answered early, with an error CloseAndReceive gives
				}
				return fromConnect(err)
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			// Reset the stream, and never close the request: closing it
			// cleanly, even after cancel, can reach the agent as the end
			// of the file before the reset does.
			cancel()
			if conn, err := cs.Conn(); err == nil {
				_ = conn.CloseResponse()
			}
			return fmt.Errorf("read the file's data: %w", rerr)
		}
	}
	_, err := cs.CloseAndReceive()
	return fromConnect(err)
}

// fill reads from r until buf is full or r fails. Unlike io.ReadFull it
// passes r's errors on as they are: only io.EOF is the end of the data,
// never an io.ErrUnexpectedEOF of r's own.
func fill(r io.Reader, buf []byte) (int, error) {
	n, idle := 0, 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
		if k > 0 {
			idle = 0
		} else if idle++; idle > 100 {
			return n, io.ErrNoProgress
		}
	}
	return n, nil
}

// ReadFile implements wrenn.Files. A missing file fails here; a
// transfer cut off later fails in Read, never as a clean EOF.
func (c *Client) ReadFile(ctx context.Context, id, path string) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	ss, err := c.rpc.ReadFile(ctx, connect.NewRequest(&agentv1.ReadFileRequest{SandboxId: id, Path: path}))
	if err != nil {
		cancel()
		return nil, fromConnect(err)
	}
	if !ss.Receive() {
		err := ss.Err()
		if err == nil {
			err = errors.New("agent closed the file stream before it began")
		}
		cancel()
		ss.Close()
		return nil, fromConnect(err)
	}
	return &fileReader{ss: ss, cancel: cancel, buf: ss.Msg().Data}, nil
}

type fileReader struct {
	ss     *connect.ServerStreamForClient[agentv1.ReadFileResponse]
	cancel context.CancelFunc
	buf    []byte
}

func (f *fileReader) Read(p []byte) (int, error) {
	for len(f.buf) == 0 {
		if !f.ss.Receive() {
			if err := f.ss.Err(); err != nil {
				return 0, fromConnect(err)
			}
			return 0, io.EOF
		}
		f.buf = f.ss.Msg().Data
	}
	n := copy(p, f.buf)
	f.buf = f.buf[n:]
	return n, nil
}

func (f *fileReader) Close() error {
	f.cancel()
	return f.ss.Close()
}

// PauseSandbox implements wrenn.Snapshotter.
func (c *Client) PauseSandbox(ctx context.Context, id string) error {
	_, err := c.rpc.PauseSandbox(ctx, connect.NewRequest(&agentv1.PauseSandboxRequest{SandboxId: id}))
	return fromSnapshotConnect(err)
}

// ResumeSandbox implements wrenn.Snapshotter.
func (c *Client) ResumeSandbox(ctx context.Context, spec wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
	resp, err := c.rpc.ResumeSandbox(ctx, connect.NewRequest(&agentv1.ResumeSandboxRequest{
		SandboxId: spec.ID, TeamId: spec.TeamID, Template: spec.Template, TemplateTeamId: spec.TemplateTeamID,
		Vcpus: int32(spec.VCPUs), MemoryMb: int32(spec.MemoryMB), Network: networkToProto(spec.Network),
	}))
	if err != nil {
		return wrenn.SandboxNet{}, fromSnapshotConnect(err)
	}
	return wrenn.SandboxNet{GuestIP: resp.Msg.GuestIp, HostIP: resp.Msg.HostIp}, nil
}

// CreateSnapshot implements wrenn.Snapshotter: it sends t's name, team
// and creation time, and fills in the sizes the agent reports.
func (c *Client) CreateSnapshot(ctx context.Context, sandboxID string, t *wrenn.Template) error {
	resp, err := c.rpc.CreateSnapshot(ctx, connect.NewRequest(&agentv1.CreateSnapshotRequest{
		SandboxId: sandboxID, TeamId: t.TeamID, Name: t.Name, CreatedAtUnixNs: unixNano(t.CreatedAt),
	}))
	if err != nil {
		return fromSnapshotConnect(err)
	}
	t.VCPUs, t.MemoryMB, t.SizeBytes = optInt(resp.Msg.Vcpus), optInt(resp.Msg.MemoryMb), resp.Msg.SizeBytes
	return nil
}

// DeleteSnapshot implements wrenn.Snapshotter.
func (c *Client) DeleteSnapshot(ctx context.Context, teamID, name string) error {
	_, err := c.rpc.DeleteSnapshot(ctx, connect.NewRequest(&agentv1.DeleteSnapshotRequest{TeamId: teamID, Name: name}))
	return fromSnapshotConnect(err)
}

// ListSnapshots implements wrenn.Snapshotter.
func (c *Client) ListSnapshots(ctx context.Context) ([]wrenn.Template, error) {
	resp, err := c.rpc.ListSnapshots(ctx, connect.NewRequest(&agentv1.ListSnapshotsRequest{}))
	if err != nil {
		return nil, fromSnapshotConnect(err)
	}
	out := make([]wrenn.Template, len(resp.Msg.Snapshots))
	for i, s := range resp.Msg.Snapshots {
		out[i] = wrenn.Template{Name: s.Name, TeamID: s.TeamId, Type: wrenn.TemplateSnapshot, CreatedAt: timeFromUnixNano(s.CreatedAtUnixNs)}
	}
	return out, nil
}

// unixNano puts a time on the wire; the zero time is 0.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// optInt reads an optional int off the wire; absent is nil.
func optInt(v *int32) *int {
	if v == nil {
		return nil
	}
	n := int(*v)
	return &n
}

func networkToProto(n wrenn.Network) *agentv1.Network {
	return &agentv1.Network{Internet: n.Internet, AllowOut: n.AllowOut, DenyOut: n.DenyOut}
}

// networkFromProto is the policy a request carries; one without a policy
// (from a control plane older than policies) gets the default.
func networkFromProto(n *agentv1.Network) wrenn.Network {
	if n == nil {
		return wrenn.DefaultNetwork
	}
	return wrenn.Network{Internet: n.Internet, AllowOut: n.AllowOut, DenyOut: n.DenyOut}
}
