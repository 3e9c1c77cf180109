package wrenn

import "time"

// SandboxSpec is what a host agent needs to start a sandbox.
type SandboxSpec struct {
	ID       string
	TeamID   string
	Template string // template name; a team's own snapshot template or a base one
	// TemplateTeamID is the team that owns the template, empty for base templates.
	TemplateTeamID string
	VCPUs          int
	MemoryMB       int
	Network        Network
}

// SandboxNet is how a started sandbox is reached on its host.
type SandboxNet struct {
	GuestIP string
	HostIP  string
}

// ExecRequest runs one command in a sandbox.
type ExecRequest struct {
	Cmd     string
	Args    []string
	Env     map[string]string
	Dir     string
	Timeout time.Duration // 0 means none
}

// MaxExecOutput is how much of each of stdout and stderr a blocking exec
// returns; the guest drops the rest and says so on stderr, past the limit.
const MaxExecOutput = 16 << 20

// ExecResult is a finished command. Output is raw bytes; transports decide
// how to encode it.
type ExecResult struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
	Duration time.Duration
}

// ExecEventType names what an ExecEvent carries.
type ExecEventType string

const (
	ExecStarted ExecEventType = "start"
	ExecStdout  ExecEventType = "stdout"
	ExecStderr  ExecEventType = "stderr"
	ExecExited  ExecEventType = "exit"
	ExecFailed  ExecEventType = "error"
)

// ExecEvent is one event of a streamed command.
type ExecEvent struct {
	Type     ExecEventType
	PID      int    // ExecStarted
	Data     []byte // ExecStdout, ExecStderr; the message for ExecFailed
	ExitCode int    // ExecExited
}

// HostInfo describes one host agent's machine.
type HostInfo struct {
	ID        string
	Accel     string // "kvm" or "tcg"
	Templates []Template
	// StoreID identifies the shared store the agent keeps paused
	// sandboxes and snapshot templates in (WRENN_SHARED_DIR); "" for none.
	StoreID string
}

// SandboxState is what a host agent knows of one sandbox it holds.
type SandboxState struct {
	ID      string
	Running bool // false: the VM died and the agent has freed its resources
	// Paused: no VM runs; the sandbox is on disk, ready to resume.
	Paused bool
	// Unresponsive: the VM runs but its guest has stopped answering the
	// agent's health checks; past a grace period the agent ends it.
	Unresponsive bool
}
