package agentrpc_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agentrpc"
	"github.com/wrennhq/wrenn/internal/mock"
)

// fakeHost is a Host of function fields, for testing the transport.
type fakeHost struct {
	mu    sync.Mutex // guards files: the server writes them, tests read them
	files map[string][]byte
	// cutRead makes ReadFile fail after this many bytes.
	cutRead int
	// exec, when set, answers Exec.
	exec func(wrenn.ExecRequest) (*wrenn.ExecResult, error)
	// abandoned is closed when the context of a streamed command "hang"
	// ends: its caller went away.
	abandoned chan struct{}
}

func (h *fakeHost) Info(context.Context) (*wrenn.HostInfo, error) {
	return &wrenn.HostInfo{ID: "h1", Accel: "tcg", Templates: []wrenn.Template{{Name: "minimal", SizeBytes: 7}}, StoreID: "store-x"}, nil
}
func (h *fakeHost) CreateSandbox(_ context.Context, s wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
	if s.Template != "minimal" {
		return wrenn.SandboxNet{}, wrenn.Errorf(wrenn.EInvalid, "no template %s", s.Template)
	}
	return wrenn.SandboxNet{GuestIP: "169.254.0.21", HostIP: "10.201.0.1"}, nil
}
func (h *fakeHost) DestroySandbox(context.Context, string) error { return nil }
func (h *fakeHost) ListSandboxes(context.Context) ([]wrenn.SandboxState, error) {
	return []wrenn.SandboxState{{ID: "sb-1", Running: true}, {ID: "sb-2"}}, nil
}
func (h *fakeHost) Exec(_ context.Context, _ string, r wrenn.ExecRequest) (*wrenn.ExecResult, error) {
	if h.exec != nil {
		return h.exec(r)
	}
	return &wrenn.ExecResult{Stdout: []byte(r.Cmd), Stderr: []byte{0xff}, ExitCode: 7, Duration: r.Timeout}, nil
}
func (h *fakeHost) StartExec(ctx context.Context, _ string, r wrenn.ExecRequest) (wrenn.ExecStream, error) {
	if r.Cmd == "" {
		return nil, wrenn.Errorf(wrenn.EInvalid, "no cmd")
	}
	if r.Cmd == "hang" {
		context.AfterFunc(ctx, func() { close(h.abandoned) })
		return &fakeStream{events: []wrenn.ExecEvent{{Type: wrenn.ExecStarted, PID: 9}}, stop: make(chan struct{})}, nil
	}
	return &fakeStream{events: []wrenn.ExecEvent{{Type: wrenn.ExecStarted, PID: 9}, {Type: wrenn.ExecStdout, Data: []byte("x")}}, stop: make(chan struct{})}, nil
}
func (h *fakeHost) WriteFile(_ context.Context, _, path string, r io.Reader) error {
	if path == "/refused" {
		return wrenn.Errorf(wrenn.EInvalid, "cannot create a file in /")
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.files[path] = b
	return nil
}

// file returns the file stored at path, if any.
func (h *fakeHost) file(path string) ([]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, ok := h.files[path]
	return b, ok
}

func (h *fakeHost) ReadFile(_ context.Context, _, path string) (io.ReadCloser, error) {
	b, ok := h.file(path)
	if !ok {
		return nil, wrenn.Errorf(wrenn.ENotFound, "file not found")
	}
	if h.cutRead > 0 {
		return io.NopCloser(io.MultiReader(bytes.NewReader(b[:h.cutRead]), errReader{})), nil
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

type fakeStream struct {
	events []wrenn.ExecEvent
	stop   chan struct{}
}

func (s *fakeStream) Recv() (wrenn.ExecEvent, error) {
	if len(s.events) > 0 {
		ev := s.events[0]
		s.events = s.events[1:]
		return ev, nil
	}
	if s.stop == nil {
		return wrenn.ExecEvent{}, io.EOF
	}
	select {
	case <-s.stop:
		s.stop = nil
		return wrenn.ExecEvent{Type: wrenn.ExecExited, ExitCode: 143}, nil
	case <-time.After(10 * time.Second):
		return wrenn.ExecEvent{}, errors.New("never stopped")
	}
}
func (s *fakeStream) Stop() error  { close(s.stop); return nil }
func (s *fakeStream) Close() error { return nil }

func serve(t *testing.T, h agentrpc.Host, token string) string {
	t.Helper()
	return serveHandler(t, agentrpc.NewHandler(h, token))
}

// serveHandler serves h as an agent would be served, and returns its address.
func serveHandler(t *testing.T, h http.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "a.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &p}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "unix:" + sock
}

func TestRoundTrips(t *testing.T) {
	ctx := context.Background()
	h := &fakeHost{files: map[string][]byte{}}
	addr := serve(t, h, "secret")
	c := agentrpc.Dial(addr, "secret")

	info, err := c.Info(ctx)
	if err != nil || info.Accel != "tcg" || len(info.Templates) != 1 || info.Templates[0].SizeBytes != 7 || info.StoreID != "store-x" {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	if _, err := c.CreateSandbox(ctx, wrenn.SandboxSpec{ID: "sb-1", Template: "nope"}); wrenn.ErrorCode(err) != wrenn.EInvalid {
		t.Errorf("create with a bad template: %v, want invalid", err)
	}
	net, err := c.CreateSandbox(ctx, wrenn.SandboxSpec{ID: "sb-1", Template: "minimal"})
	if err != nil || net.HostIP != "10.201.0.1" {
		t.Fatalf("create = %+v, %v", net, err)
	}
	states, err := c.ListSandboxes(ctx)
	if err != nil || len(states) != 2 || !states[0].Running || states[1].Running {
		t.Errorf("list = %+v, %v", states, err)
	}
	res, err := c.Exec(ctx, "sb-1", wrenn.ExecRequest{Cmd: "ls", Timeout: 3 * time.Second})
	if err != nil || string(res.Stdout) != "ls" || res.Stderr[0] != 0xff || res.ExitCode != 7 || res.Duration != 3*time.Second {
		t.Errorf("exec = %+v, %v", res, err)
	}

	// Files: 5 MiB crosses many chunks; the hash must survive.
	data := bytes.Repeat([]byte("0123456789abcdef"), 5<<16)
	if err := c.WriteFile(ctx, "sb-1", "/f", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	rc, err := c.ReadFile(ctx, "sb-1", "/f")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	if _, err := c.ReadFile(ctx, "sb-1", "/missing"); wrenn.ErrorCode(err) != wrenn.ENotFound {
		t.Errorf("missing file: %v, want not found", err)
	}
	// A write whose source fails must fail, and not store a file.
	failing := io.MultiReader(bytes.NewReader(data[:1<<20]), errReader{})
	if err := c.WriteFile(ctx, "sb-1", "/g", failing); err == nil {
		t.Error("a write whose reader failed succeeded")
	}
	if _, ok := h.file("/g"); ok {
		t.Error("a failed write left a file")
	}
	// A read cut off midway is an error, never a clean EOF.
	h.cutRead = 1 << 20
	rc, err = c.ReadFile(ctx, "sb-1", "/f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); err == nil {
		t.Error("a cut-off read ended cleanly")
	}
	rc.Close()

	// Streams: events in order, stop reaches the host, then EOF.
	st, err := c.StartExec(ctx, "sb-1", wrenn.ExecRequest{Cmd: "tail"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []wrenn.ExecEventType{wrenn.ExecStarted, wrenn.ExecStdout} {
		ev, err := st.Recv()
		if err != nil || ev.Type != want {
			t.Fatalf("event %+v, %v; want %s", ev, err, want)
		}
	}
	if err := st.Stop(); err != nil {
		t.Fatal(err)
	}
	if ev, err := st.Recv(); err != nil || ev.Type != wrenn.ExecExited || ev.ExitCode != 143 {
		t.Fatalf("exit event %+v, %v", ev, err)
	}
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after exit: %v, want EOF", err)
	}
	st.Close()
	if _, err := c.StartExec(ctx, "sb-1", wrenn.ExecRequest{}); wrenn.ErrorCode(err) != wrenn.EInvalid {
		t.Errorf("bad stream start: %v, want invalid", err)
	}
}

func TestRefusesWrongToken(t *testing.T) {
	addr := serve(t, &fakeHost{}, "secret")
	for _, tok := range []string{"", "secre", "secret2", strings.ToUpper("secret")} {
		if _, err := agentrpc.Dial(addr, tok).Info(context.Background()); err == nil {
			t.Errorf("token %q accepted", tok)
		}
	}
}

// snapHost is a Host that can also snapshot: mock.Agent has every method
// but Info.
type snapHost struct {
	*mock.Agent
}

func (snapHost) Info(context.Context) (*wrenn.HostInfo, error) {
	return &wrenn.HostInfo{ID: "h1", Accel: "kvm"}, nil
}

func TestSnapshotRoundTrips(t *testing.T) {
	ctx := context.Background()
	created := time.Date(2025, 3, 4, 5, 6, 7, 891011, time.UTC)
	var paused, deleted []string
	h := snapHost{&mock.Agent{
		ListSandboxesFn: func(context.Context) ([]wrenn.SandboxState, error) {
			return []wrenn.SandboxState{{ID: "sb-1", Running: true}, {ID: "sb-2", Paused: true}}, nil
		},
		PauseSandboxFn: func(_ context.Context, id string) error {
			if id == "sb-busy" {
				return wrenn.Errorf(wrenn.EConflict, "sandbox is busy")
			}
			paused = append(paused, id)
			return nil
		},
		ResumeSandboxFn: func(_ context.Context, s wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
			want := wrenn.SandboxSpec{ID: "sb-2", TeamID: "t1", Template: "snap", TemplateTeamID: "t1", VCPUs: 2, MemoryMB: 512,
				Network: wrenn.Network{AllowOut: []string{"pypi.org"}, DenyOut: []string{"0.0.0.0/0"}}}
			if !reflect.DeepEqual(s, want) {
				return wrenn.SandboxNet{}, wrenn.Errorf(wrenn.EInvalid, "spec %+v, want %+v", s, want)
			}
			return wrenn.SandboxNet{GuestIP: "169.254.0.21", HostIP: "10.201.0.5"}, nil
		},
		CreateSnapshotFn: func(_ context.Context, id string, tp *wrenn.Template) error {
			if id == "sb-gone" {
				return wrenn.Errorf(wrenn.ENotFound, "sandbox not found")
			}
			if id != "sb-1" || tp.Name != "snap" || tp.TeamID != "t1" || tp.Type != wrenn.TemplateSnapshot {
				return wrenn.Errorf(wrenn.EInvalid, "snapshot of %s as %+v", id, tp)
			}
			if !tp.CreatedAt.Equal(created) && !tp.CreatedAt.IsZero() {
				return wrenn.Errorf(wrenn.EInvalid, "created at %v, want %v", tp.CreatedAt, created)
			}
			vcpus := 2
			tp.VCPUs, tp.SizeBytes = &vcpus, 123<<20
			return nil
		},
		ListSnapshotsFn: func(context.Context) ([]wrenn.Template, error) {
			return []wrenn.Template{{Name: "snap", TeamID: "t1", CreatedAt: created}, {Name: "old", TeamID: "t2"}}, nil
		},
		DeleteSnapshotFn: func(_ context.Context, teamID, name string) error {
			if name == "missing" {
				return wrenn.Errorf(wrenn.ENotFound, "template not found")
			}
			deleted = append(deleted, teamID+"/"+name)
			return nil
		},
	}}
	c := agentrpc.Dial(serve(t, h, "secret"), "secret")

	states, err := c.ListSandboxes(ctx)
	if err != nil || len(states) != 2 || states[0].Paused || !states[1].Paused || states[1].Running {
		t.Errorf("list = %+v, %v", states, err)
	}

	if err := c.PauseSandbox(ctx, "sb-1"); err != nil || len(paused) != 1 || paused[0] != "sb-1" {
		t.Errorf("pause = %v, host saw %v", err, paused)
	}
	err = c.PauseSandbox(ctx, "sb-busy")
	if wrenn.ErrorCode(err) != wrenn.EConflict || wrenn.ErrorMessage(err) != "sandbox is busy" {
		t.Errorf("pause of a busy sandbox: %v, want conflict", err)
	}

	net, err := c.ResumeSandbox(ctx, wrenn.SandboxSpec{ID: "sb-2", TeamID: "t1", Template: "snap", TemplateTeamID: "t1", VCPUs: 2, MemoryMB: 512,
		Network: wrenn.Network{AllowOut: []string{"pypi.org"}, DenyOut: []string{"0.0.0.0/0"}}})
	if err != nil || net.GuestIP != "169.254.0.21" || net.HostIP != "10.201.0.5" {
		t.Errorf("resume = %+v, %v", net, err)
	}

	mem := 999 // the agent reports no memory size; a stale value must not survive
	tp := &wrenn.Template{Name: "snap", TeamID: "t1", Type: wrenn.TemplateSnapshot, CreatedAt: created, MemoryMB: &mem}
	if err := c.CreateSnapshot(ctx, "sb-1", tp); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if tp.VCPUs == nil || *tp.VCPUs != 2 || tp.MemoryMB != nil || tp.SizeBytes != 123<<20 || tp.Name != "snap" || !tp.CreatedAt.Equal(created) {
		t.Errorf("snapshot filled in %+v", tp)
	}
	if err := c.CreateSnapshot(ctx, "sb-1", &wrenn.Template{Name: "snap", TeamID: "t1"}); err != nil {
		t.Errorf("snapshot with no creation time: %v", err)
	}
	if err := c.CreateSnapshot(ctx, "sb-gone", &wrenn.Template{Name: "snap", TeamID: "t1"}); wrenn.ErrorCode(err) != wrenn.ENotFound {
		t.Errorf("snapshot of a missing sandbox: %v, want not found", err)
	}

	snaps, err := c.ListSnapshots(ctx)
	if err != nil || len(snaps) != 2 || snaps[0].Name != "snap" || snaps[0].TeamID != "t1" || !snaps[0].CreatedAt.Equal(created) ||
		snaps[1].Name != "old" || !snaps[1].CreatedAt.IsZero() || snaps[1].Type != wrenn.TemplateSnapshot {
		t.Errorf("list snapshots = %+v, %v", snaps, err)
	}

	if err := c.DeleteSnapshot(ctx, "t1", "snap"); err != nil || len(deleted) != 1 || deleted[0] != "t1/snap" {
		t.Errorf("delete = %v, host saw %v", err, deleted)
	}
	if err := c.DeleteSnapshot(ctx, "t1", "missing"); wrenn.ErrorCode(err) != wrenn.ENotFound {
		t.Errorf("delete of a missing snapshot: %v, want not found", err)
	}
}

// A host that cannot snapshot answers every snapshot RPC with a host
// agent error saying so.
func TestSnapshotUnimplemented(t *testing.T) {
	ctx := context.Background()
	c := agentrpc.Dial(serve(t, &fakeHost{}, "secret"), "secret")
	calls := map[string]func() error{
		"pause":  func() error { return c.PauseSandbox(ctx, "sb-1") },
		"resume": func() error { _, err := c.ResumeSandbox(ctx, wrenn.SandboxSpec{ID: "sb-1"}); return err },
		"create": func() error { return c.CreateSnapshot(ctx, "sb-1", &wrenn.Template{Name: "snap", TeamID: "t1"}) },
		"delete": func() error { return c.DeleteSnapshot(ctx, "t1", "snap") },
		"list":   func() error { _, err := c.ListSnapshots(ctx); return err },
	}
	for name, call := range calls {
		err := call()
		if wrenn.ErrorCode(err) != wrenn.EHostAgent || !strings.Contains(wrenn.ErrorMessage(err), "cannot pause") {
			t.Errorf("%s: %v, want a host agent error", name, err)
		}
	}
}

// TestExecLargeOutput: a blocking exec's answer carries as much output as
// the guest keeps, wrenn.MaxExecOutput of each of stdout and stderr and
// the guest's notes past it.
func TestExecLargeOutput(t *testing.T) {
	notes := 64 << 10
	for _, size := range []int{600000, wrenn.MaxExecOutput + notes} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			stdout, stderr := bytes.Repeat([]byte("a"), size), bytes.Repeat([]byte("b"), size)
			h := &fakeHost{exec: func(wrenn.ExecRequest) (*wrenn.ExecResult, error) {
				return &wrenn.ExecResult{Stdout: stdout, Stderr: stderr}, nil
			}}
			c := agentrpc.Dial(serve(t, h, "secret"), "secret")
			res, err := c.Exec(context.Background(), "sb-1", wrenn.ExecRequest{Cmd: "yes"})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(res.Stdout, stdout) || !bytes.Equal(res.Stderr, stderr) {
				t.Errorf("got %d bytes of stdout and %d of stderr, want %d of each", len(res.Stdout), len(res.Stderr), size)
			}
		})
	}
}

// TestDomainErrors: an error the agent answers with keeps its code and
// message when the client may act on it; any other stays an ordinary error.
func TestDomainErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		code string
		want string // wrenn.EInternal: an ordinary error
	}{
		{wrenn.EInvalid, wrenn.EInvalid},
		{wrenn.ENotFound, wrenn.ENotFound},
		{wrenn.EConflict, wrenn.EConflict},
		{wrenn.ETooLarge, wrenn.ETooLarge},
		{wrenn.EHostFull, wrenn.EHostFull},
		{wrenn.EUnauthorized, wrenn.EInternal},
		{wrenn.EInternal, wrenn.EInternal},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			h := &fakeHost{exec: func(wrenn.ExecRequest) (*wrenn.ExecResult, error) {
				return nil, wrenn.Errorf(tt.code, "the guest says no")
			}}
			c := agentrpc.Dial(serve(t, h, "secret"), "secret")
			_, err := c.Exec(ctx, "sb-1", wrenn.ExecRequest{Cmd: "x"})
			if err == nil || wrenn.ErrorCode(err) != tt.want {
				t.Fatalf("got %v, want code %s", err, tt.want)
			}
			if tt.want != wrenn.EInternal && wrenn.ErrorMessage(err) != "the guest says no" {
				t.Errorf("message %q", wrenn.ErrorMessage(err))
			}
		})
	}
	// A client stream's answer carries its code too.
	c := agentrpc.Dial(serve(t, &fakeHost{files: map[string][]byte{}}, "secret"), "secret")
	if err := c.WriteFile(ctx, "sb-1", "/refused", strings.NewReader("x")); wrenn.ErrorCode(err) != wrenn.EInvalid {
		t.Errorf("refused write: %v, want %s", err, wrenn.EInvalid)
	}
}

// TestTransportErrorsStayOrdinary: an RPC that fails in transport fails
// as an ordinary error (a host agent failure), whatever connect code the
// failure has: only the agent's own answers are domain errors.
func TestTransportErrorsStayOrdinary(t *testing.T) {
	ctx := context.Background()
	huge := &fakeHost{exec: func(wrenn.ExecRequest) (*wrenn.ExecResult, error) {
		return &wrenn.ExecResult{Stdout: make([]byte, 3*wrenn.MaxExecOutput)}, nil
	}}
	// Something at the agent's address that is not the agent, answering
	// with connect errors of its own.
	impostor := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"code":"invalid_argument","message":"not an agent"}`)
	})
	tests := []struct {
		name string
		addr func(t *testing.T) string
		req  wrenn.ExecRequest
	}{
		{"answer over the limit", func(t *testing.T) string { return serve(t, huge, "secret") }, wrenn.ExecRequest{Cmd: "x"}},
		{"request over the limit", func(t *testing.T) string { return serve(t, &fakeHost{}, "secret") },
			wrenn.ExecRequest{Cmd: "echo", Args: []string{strings.Repeat("a", 5<<20)}}},
		{"not the agent", func(t *testing.T) string { return serveHandler(t, impostor) }, wrenn.ExecRequest{Cmd: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := agentrpc.Dial(tt.addr(t), "secret")
			_, err := c.Exec(ctx, "sb-1", tt.req)
			if err == nil || wrenn.ErrorCode(err) != wrenn.EInternal {
				t.Fatalf("got %v (code %s), want an ordinary error", err, wrenn.ErrorCode(err))
			}
		})
	}
}

// TestWriteFileSourceCutShort: a source that ends in io.ErrUnexpectedEOF
// (a request body cut short) fails the write, and the agent keeps nothing.
func TestWriteFileSourceCutShort(t *testing.T) {
	h := &fakeHost{files: map[string][]byte{}}
	c := agentrpc.Dial(serve(t, h, "secret"), "secret")
	for _, n := range []int{0, 1000, 1 << 20} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			src := io.MultiReader(bytes.NewReader(make([]byte, n)), iotest.ErrReader(io.ErrUnexpectedEOF))
			err := c.WriteFile(context.Background(), "sb-1", "/short", src)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("WriteFile: %v, want the source's io.ErrUnexpectedEOF", err)
			}
			if b, ok := h.file("/short"); ok {
				t.Errorf("the agent stored a file of %d bytes", len(b))
			}
		})
	}
}

// A caller whose context ends while a streamed command prints nothing
// ends the stream at the agent, which ends the command.
func TestExecStreamCallerGone(t *testing.T) {
	h := &fakeHost{abandoned: make(chan struct{})}
	c := agentrpc.Dial(serve(t, h, "secret"), "secret")
	ctx, cancel := context.WithCancel(t.Context())
	st, err := c.StartExec(ctx, "sb-1", wrenn.ExecRequest{Cmd: "hang"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if ev, err := st.Recv(); err != nil || ev.Type != wrenn.ExecStarted {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	cancel()
	select {
	case <-h.abandoned:
	case <-time.After(5 * time.Second):
		t.Fatal("the agent still runs the command 5 s after its caller went away")
	}
}
