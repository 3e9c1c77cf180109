package wrenn

import "context"

// Background processes: commands that run on after the request that
// started them, each in its own process group, known by a pid and a tag,
// whose latest output the guest keeps so that a client connecting late
// (or again) reads what was printed before it came.

// ProcessRequest starts a background process. Env and Dir mean what they
// mean for ExecRequest; a background process has no timeout.
type ProcessRequest struct {
	Cmd  string
	Args []string
	Env  map[string]string
	Dir  string
	// Tag names the process; empty lets the guest make one up.
	Tag string
}

// Process is a background process, running or lately exited.
type Process struct {
	PID     int
	Tag     string
	Cmd     string
	Args    []string
	Running bool
	// ExitCode is set once the process has exited (Running false).
	ExitCode int
}

// ProcessSelector names one background process: by PID when it is set,
// else by Tag.
type ProcessSelector struct {
	PID int
	Tag string
}

// Signal is how KillProcess ends a process group.
type Signal string

const (
	// SIGTERM now and SIGKILL after a grace period, if the group has not
	// ended by then.
	SIGTERM Signal = "SIGTERM"
	// SIGKILL at once.
	SIGKILL Signal = "SIGKILL"
)

// MaxProcessOutput is how much of its latest output the guest keeps for
// each background process, for clients that connect after it was printed.
const MaxProcessOutput = 1 << 20

// ProcessStream is a background process's output: a start event, what the
// guest still holds of its output, live output, then its exit event.
type ProcessStream interface {
	// Recv returns the next event; after the exit event it returns io.EOF.
	Recv() (ExecEvent, error)
	// Close stops streaming; the process runs on.
	Close() error
}

// Processes runs background processes in a running sandbox. It is an
// optional capability of an Agent, found by type assertion. A selector
// that names no process is an ENotFound error; a tag that a running
// process holds, EConflict.
type Processes interface {
	StartProcess(ctx context.Context, id string, req ProcessRequest) (Process, error)
	// ListProcesses reports the running processes and those that exited
	// lately.
	ListProcesses(ctx context.Context, id string) ([]Process, error)
	// KillProcess ends the process group of a running process and returns
	// once its leader has exited.
	KillProcess(ctx context.Context, id string, sel ProcessSelector, sig Signal) error
	ConnectProcess(ctx context.Context, id string, sel ProcessSelector) (ProcessStream, error)
}
