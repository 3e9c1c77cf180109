package wrenn

import (
	"context"
	"io"
)

// The host agent's surface: what the control plane asks of the agent that
// owns the VMs on one machine. The control plane calls it (in process or
// through internal/agentrpc); internal/agent implements it. Both sides see
// only these interfaces and the domain types, never each other.

// Lifecycle starts and stops sandboxes on a host.
type Lifecycle interface {
	CreateSandbox(ctx context.Context, spec SandboxSpec) (SandboxNet, error)
	// DestroySandbox frees everything the sandbox holds, running or paused.
	// Destroying one the agent does not know is not an error.
	DestroySandbox(ctx context.Context, id string) error
}

// Runner runs commands in a running sandbox.
type Runner interface {
	Exec(ctx context.Context, id string, req ExecRequest) (*ExecResult, error)
	StartExec(ctx context.Context, id string, req ExecRequest) (ExecStream, error)
}

// ExecStream is one streamed command.
type ExecStream interface {
	// Recv returns the next event; after the exit event it returns io.EOF.
	Recv() (ExecEvent, error)
	// Stop asks the command to end: SIGTERM, then SIGKILL after a grace period.
	Stop() error
	// Close releases the stream, killing the command if it still runs.
	Close() error
}

// Files moves file contents in and out of a running sandbox. Paths are
// absolute; contents are streamed, never held whole.
type Files interface {
	WriteFile(ctx context.Context, id, path string, r io.Reader) error
	// ReadFile fails with a ENotFound error when the file is absent.
	ReadFile(ctx context.Context, id, path string) (io.ReadCloser, error)
}

// FileSystem lists and changes the file tree of a running sandbox. It is
// an optional capability of an Agent, found by type assertion. Paths are
// absolute; a missing path is an ENotFound error, an existing target an
// EConflict one, and anything else the guest refuses EInvalid.
type FileSystem interface {
	// ListDir lists the directory path depth levels deep (1: its
	// children only), each directory before what it holds.
	ListDir(ctx context.Context, id, path string, depth int) ([]FileEntry, error)
	// MakeDir creates the directory path, and its missing parents if
	// parents is set.
	MakeDir(ctx context.Context, id, path string, parents bool) (FileEntry, error)
	// Remove removes path and, if it is a directory, everything in it.
	Remove(ctx context.Context, id, path string) error
	Stat(ctx context.Context, id, path string) (FileEntry, error)
	// Move renames src to dst, which must not exist.
	Move(ctx context.Context, id, src, dst string) (FileEntry, error)
}

// Snapshotter freezes sandboxes to disk and makes templates of them. It
// is an optional capability of an Agent, found by type assertion.
type Snapshotter interface {
	PauseSandbox(ctx context.Context, id string) error
	ResumeSandbox(ctx context.Context, spec SandboxSpec) (SandboxNet, error)
	// CreateSnapshot turns the running sandbox into the template t
	// (t.Name, t.TeamID set), destroying the sandbox, and fills in t's sizes.
	CreateSnapshot(ctx context.Context, sandboxID string, t *Template) error
	DeleteSnapshot(ctx context.Context, teamID, name string) error
	// ListSnapshots reports the snapshot templates whose files the host
	// holds (Name, TeamID and CreatedAt set), so that files no record
	// names can be found and removed.
	ListSnapshots(ctx context.Context) ([]Template, error)
}

// Agent is a host agent as the control plane uses it.
type Agent interface {
	Lifecycle
	Runner
	Files
}
