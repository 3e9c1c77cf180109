package wrenn

import "context"

// Terminals runs interactive terminals in running sandboxes: a program on
// a pseudo-terminal of its own that keeps running when nobody is attached,
// so that a client can go away and connect to it again by its tag. It is
// an optional capability of an Agent, found by type assertion.
type Terminals interface {
	// OpenTerminal starts a terminal (req.Tag empty) or attaches to the
	// one tagged req.Tag, which is ENotFound when the sandbox has none.
	// The first event is TerminalStarted.
	OpenTerminal(ctx context.Context, id string, req TerminalRequest) (Terminal, error)
}

// TerminalRequest starts a terminal, or names one to attach to.
type TerminalRequest struct {
	// Tag attaches to an existing terminal; the other fields are then
	// ignored.
	Tag  string
	Cmd  string // empty: /bin/bash
	Args []string
	Env  map[string]string // TERM defaults to xterm-256color
	Dir  string            // empty: the user's home
	User string            // empty: root
	Cols int               // 0: 80
	Rows int               // 0: 24
}

// Terminal is one attachment to a terminal. Recv is for one goroutine;
// the other methods may be called from any.
type Terminal interface {
	// Recv returns the next event: started first, output as it comes,
	// exit when the program has ended; then io.EOF.
	Recv() (TerminalEvent, error)
	// Input types data into the terminal.
	Input(data []byte) error
	Resize(cols, rows int) error
	// Kill ends the terminal's program and everything it started.
	Kill() error
	// Close detaches; the terminal's program keeps running.
	Close() error
}

// TerminalEventType names what a TerminalEvent carries.
type TerminalEventType string

const (
	TerminalStarted TerminalEventType = "started"
	TerminalOutput  TerminalEventType = "output"
	TerminalExited  TerminalEventType = "exit"
)

// TerminalEvent is one event of an attached terminal.
type TerminalEvent struct {
	Type     TerminalEventType
	Tag      string // TerminalStarted
	PID      int    // TerminalStarted
	Data     []byte // TerminalOutput: raw terminal bytes
	ExitCode int    // TerminalExited
}

// Terminal size bounds: a pseudo-terminal's size is two 16-bit numbers.
const (
	MaxTerminalCols = 1 << 12
	MaxTerminalRows = 1 << 12
)
