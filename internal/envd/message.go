package envd

import (
	"errors"

	"github.com/wrennhq/wrenn"
)

// Operations a request names.
const (
	opPing  = "ping"
	opInit  = "init"
	opExec  = "exec"
	opWrite = "write"
	opRead  = "read"
	opList  = "list"
	opMkdir = "mkdir"
	opRm    = "remove"
	opStat  = "stat"
	opMove  = "move"
	opWatch = "watch"
	// opDetach ends the session at the host's request, before a snapshot:
	// a guest restored from it is already waiting for a new host's hello.
	opDetach = "detach"

	// Background processes (proc.go).
	opSpawn  = "spawn"
	opProcs  = "procs"
	opKill   = "kill"
	opAttach = "attach"
	// Terminals (pty.go).
	opPty = "pty"
)

// Message types of replies, exec events and exec control.
const (
	msgOK     = "ok"
	msgError  = "error"
	msgStart  = "start"
	msgFailed = "failed" // the program could not be started
	msgExit   = "exit"
	msgStop   = "stop" // host → guest during exec: SIGTERM, then SIGKILL
	msgList   = "entries"
	msgEvents = "events" // a batch of a watch's changes
	msgProcs  = "procs"  // a batch of the background process table
	// Terminals (pty.go).
	msgStarted = "started" // guest → host: the terminal's tag and pid
	msgResize  = "resize"  // host → guest: cols, rows
	msgKill    = "kill"    // host → guest: SIGKILL to the terminal's session
)

// request is the first frame of every stream.
type request struct {
	Op   string      `json:"op"`
	Init *initParams `json:"init,omitempty"`
	Exec *execParams `json:"exec,omitempty"`
	Path string      `json:"path,omitempty"`
	// list: levels to descend (1: the directory's children); mkdir:
	// parents; move: Dest.
	Depth   int    `json:"depth,omitempty"`
	Parents bool   `json:"parents,omitempty"`
	Dest    string `json:"dest,omitempty"`
	// watch: everything below path too.
	Recursive bool `json:"recursive,omitempty"`
	// Background processes: spawn's Tag (empty: make one up), and the
	// selector of kill and attach (PID, else Tag); kill's Signal.
	PID    int    `json:"pid,omitempty"`
	Tag    string `json:"tag,omitempty"`
	Signal string `json:"signal,omitempty"`
	// pty: start a terminal, or attach to the one tagged.
	Pty *ptyParams `json:"pty,omitempty"`
}

type initParams struct {
	UnixNano int64  `json:"unix_nano"`
	Entropy  []byte `json:"entropy,omitempty"`
	Hostname string `json:"hostname,omitempty"`
}

type execParams struct {
	Cmd       string            `json:"cmd"`
	Args      []string          `json:"args,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Dir       string            `json:"dir,omitempty"`
	TimeoutNS int64             `json:"timeout_ns,omitempty"`
	// OutputLimit caps each of stdout and stderr; 0 means no cap.
	OutputLimit int64 `json:"output_limit,omitempty"`
	// NoStart asks for no start event: a blocking exec has no use for the
	// pid, and under emulation every message out of the guest costs.
	NoStart bool `json:"no_start,omitempty"`
}

// message is every JSON frame after the request, either way.
type message struct {
	Type string `json:"type"`
	// error, failed
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// start, started; ok to spawn
	PID int `json:"pid,omitempty"`
	// ok to spawn; started: the terminal's tag
	Tag string `json:"tag,omitempty"`
	// exit, failed
	ExitCode        int   `json:"exit_code"`
	DurationNS      int64 `json:"duration_ns,omitempty"`
	TimedOut        bool  `json:"timed_out,omitempty"`
	StdoutTruncated bool  `json:"stdout_truncated,omitempty"`
	StderrTruncated bool  `json:"stderr_truncated,omitempty"`
	// ok to read
	Size int64 `json:"size,omitempty"`
	// ok to mkdir, stat and move
	Entry *entry `json:"entry,omitempty"`
	// entries: a batch of a listing
	Entries []entry `json:"entries,omitempty"`
	// events: a batch of a watch's changes
	Events []fsEvent `json:"events,omitempty"`
	// procs: a batch of the background process table
	Procs []procEntry `json:"procs,omitempty"`
	// resize: a terminal's new size.
	Cols int `json:"cols,omitempty"`
	Rows int `json:"rows,omitempty"`
}

// ptyParams starts a terminal (Tag empty) or names one to attach to.
type ptyParams struct {
	Tag  string            `json:"tag,omitempty"`
	Cmd  string            `json:"cmd,omitempty"`
	Args []string          `json:"args,omitempty"`
	Env  map[string]string `json:"env,omitempty"`
	Dir  string            `json:"dir,omitempty"`
	User string            `json:"user,omitempty"`
	Cols int               `json:"cols,omitempty"`
	Rows int               `json:"rows,omitempty"`
}

// errorMessage encodes err for the host. Only *wrenn.Error keeps its code.
func errorMessage(err error) message {
	if e, ok := errors.AsType[*wrenn.Error](err); ok {
		return message{Type: msgError, Code: e.Code, Message: e.Message}
	}
	return message{Type: msgError, Message: err.Error()}
}

// maxErrorMessage bounds the text of an error the guest reports.
const maxErrorMessage = 4 << 10

// guestError decodes an error message from the guest. The guest is not
// trusted, so only the codes it has reason to send survive; anything else
// becomes an ordinary error.
func (m message) guestError() error {
	text := m.Message
	if len(text) > maxErrorMessage {
		text = text[:maxErrorMessage]
	}
	switch m.Code {
	case wrenn.EInvalid, wrenn.ENotFound, wrenn.EConflict, wrenn.ETooLarge, wrenn.EQuotaExceeded:
		return &wrenn.Error{Code: m.Code, Message: text}
	}
	if text == "" {
		text = "unknown error"
	}
	return errors.New("guest: " + text)
}
