package client

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// ExecRequest is one command to run in a sandbox.
type ExecRequest struct {
	Cmd  string
	Args []string
	// Envs is added to the sandbox's default environment.
	Envs map[string]string
	// Cwd is the working directory, relative to /root unless absolute.
	Cwd string
	// Timeout bounds a blocking Exec or an ExecStream (whole seconds,
	// rounded up); 0 is the server's default, 30 s. Background processes
	// have none.
	Timeout time.Duration
}

// Command is an ExecRequest of a program and its arguments.
func Command(name string, args ...string) ExecRequest { return ExecRequest{Cmd: name, Args: args} }

// execBody is ExecRequest on the wire.
type execBody struct {
	Type       string            `json:"type,omitempty"` // streams only: "start"
	Cmd        string            `json:"cmd"`
	Args       []string          `json:"args,omitempty"`
	Envs       map[string]string `json:"envs,omitempty"`
	Cwd        string            `json:"cwd,omitempty"`
	TimeoutSec int               `json:"timeout_sec,omitempty"`
	Background bool              `json:"background,omitempty"`
	Tag        string            `json:"tag,omitempty"`
}

func (r ExecRequest) body() execBody {
	b := execBody{Cmd: r.Cmd, Args: r.Args, Envs: r.Envs, Cwd: r.Cwd}
	if r.Timeout > 0 {
		b.TimeoutSec = int((r.Timeout + time.Second - 1) / time.Second)
	}
	return b
}

// ExecResult is a finished command.
type ExecResult struct {
	SandboxID string
	Cmd       string
	Stdout    []byte
	Stderr    []byte
	ExitCode  int
	Duration  time.Duration
}

// Exec runs a command and waits for it to end. A command that fails is
// still a result, with its exit code; errors are the API's.
func (c *Client) Exec(ctx context.Context, id string, req ExecRequest) (*ExecResult, error) {
	var out struct {
		SandboxID  string `json:"sandbox_id"`
		Cmd        string `json:"cmd"`
		Stdout     string `json:"stdout"`
		Stderr     string `json:"stderr"`
		ExitCode   int    `json:"exit_code"`
		DurationMS int64  `json:"duration_ms"`
		Encoding   string `json:"encoding"`
	}
	if err := c.do(ctx, http.MethodPost, c.url(sandboxPath(id, "/exec"), nil), req.body(), &out); err != nil {
		return nil, err
	}
	res := &ExecResult{SandboxID: out.SandboxID, Cmd: out.Cmd, ExitCode: out.ExitCode,
		Duration: time.Duration(out.DurationMS) * time.Millisecond}
	var err error
	if res.Stdout, err = decodeData(out.Stdout, out.Encoding); err != nil {
		return nil, fmt.Errorf("exec stdout: %w", err)
	}
	if res.Stderr, err = decodeData(out.Stderr, out.Encoding); err != nil {
		return nil, fmt.Errorf("exec stderr: %w", err)
	}
	return res, nil
}

// decodeData is output as the server sent it: text, or base64 when the
// encoding says so.
func decodeData(s, encoding string) ([]byte, error) {
	if encoding == "base64" {
		return base64.StdEncoding.DecodeString(s)
	}
	return []byte(s), nil
}

// Process is a background process.
type Process struct {
	PID  int      `json:"pid"`
	Tag  string   `json:"tag"`
	Cmd  string   `json:"cmd"`
	Args []string `json:"args"`
}

// StartProcess starts a command in the background and returns at once
// with its pid and tag. tag names it (at most 128 bytes, not a number,
// no '/'); empty makes one up. A tag a running process holds is a
// conflict. req.Timeout does not apply.
func (c *Client) StartProcess(ctx context.Context, id string, req ExecRequest, tag string) (*Process, error) {
	b := req.body()
	b.TimeoutSec, b.Background, b.Tag = 0, true, tag
	var p Process
	if err := c.do(ctx, http.MethodPost, c.url(sandboxPath(id, "/exec"), nil), b, &p); err != nil {
		return nil, err
	}
	p.Args = req.Args
	return &p, nil
}

// ListProcesses lists the sandbox's running background processes in the
// order they started.
func (c *Client) ListProcesses(ctx context.Context, id string) ([]Process, error) {
	var out struct {
		Processes []Process `json:"processes"`
	}
	if err := c.do(ctx, http.MethodGet, c.url(sandboxPath(id, "/processes"), nil), nil, &out); err != nil {
		return nil, err
	}
	return out.Processes, nil
}

// Signal is how KillProcess ends a process group.
type Signal string

const (
	// SIGTERM, then SIGKILL after 2 s if the group is still there; the
	// default.
	SIGTERM Signal = "SIGTERM"
	// SIGKILL at once.
	SIGKILL Signal = "SIGKILL"
)

// KillProcess ends a background process's group and returns once it has
// exited. selector is its pid (in decimal) or its tag; sig "" is SIGTERM.
func (c *Client) KillProcess(ctx context.Context, id, selector string, sig Signal) error {
	q := optional("signal", string(sig))
	return c.do(ctx, http.MethodDelete, c.url(sandboxPath(id, "/processes/"+url.PathEscape(selector)), q), nil, nil)
}
