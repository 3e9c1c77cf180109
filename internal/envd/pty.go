package envd

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/wrennhq/wrenn"
)

// Terminals live in the guest, in the server that every session of one
// envd process shares: a terminal outlives the host stream attached to it,
// the session that stream was on (a host agent restart) and a snapshot of
// the VM (pause and resume).
const (
	maxTerminals    = 32
	terminalBacklog = 256 << 10 // output kept while nobody is attached
	// terminalLinger is how long a terminal whose program has exited is
	// kept, for its exit code, when nobody is attached to take it.
	terminalLinger  = 5 * time.Minute
	defaultTermCmd  = "/bin/bash"
	defaultTermType = "xterm-256color"
	defaultCols     = 80
	defaultRows     = 24
	terminalTagSize = 4 // random bytes of a tag: "pty-" and 8 hex digits
	// terminalDrain is how long output may still come after the program
	// has exited, from what it left behind holding the terminal.
	terminalDrain = 500 * time.Millisecond
)

// terminals are the terminals of one guest, by tag.
type terminals struct {
	mu     sync.Mutex
	byTag  map[string]*terminal
	closed bool           // closeAll has run: exited terminals do not linger
	wg     sync.WaitGroup // every terminal's goroutines
}

// terminal is a program on a pseudo-terminal of its own, in a session of
// its own (so job control works), with at most one host attached.
type terminal struct {
	tag  string
	pid  int
	ptmx *os.File
	log  *slog.Logger
	ts   *terminals

	mu       sync.Mutex
	att      *attachment // nil: nobody attached
	backlog  []byte      // output while nobody was attached, the latest terminalBacklog bytes
	exited   bool
	exitCode int
	linger   *time.Timer
}

// attachment is one host stream attached to a terminal. Writes to it are
// serialised by wmu, so output never overtakes the backlog replayed first.
type attachment struct {
	p      *peer
	wmu    sync.Mutex
	broken bool // a write failed or another host took over; guarded by wmu
}

func (a *attachment) write(typ byte, payload []byte) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return a.writeLocked(typ, payload)
}

func (a *attachment) send(m message) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return a.sendLocked(m)
}

func (a *attachment) sendLocked(m message) error {
	b, err := encodeJSON(m)
	if err != nil {
		return err
	}
	return a.writeLocked(frameJSON, b)
}

func (a *attachment) writeLocked(typ byte, payload []byte) error {
	if a.broken {
		return errCallClosed
	}
	if err := writeFrame(a.p.st, typ, payload); err != nil {
		a.broken = true
		return err
	}
	return nil
}

// cut stops every write to the host, blocked or to come.
func (a *attachment) cut() {
	a.p.st.SetWriteDeadline(time.Unix(1, 0))
	a.wmu.Lock()
	a.broken = true
	a.wmu.Unlock()
}

// terminal serves one pty stream: start or attach, then the host's input,
// resizes and kill until it detaches.
func (s *server) terminal(ctx context.Context, p *peer, req *ptyParams) {
	if req == nil {
		p.reply(wrenn.Errorf(wrenn.EInvalid, "pty needs parameters"))
		return
	}
	var t *terminal
	var err error
	if req.Tag != "" {
		t, err = s.terms.get(req.Tag)
	} else {
		t, err = s.terms.start(s.log, req)
	}
	if err != nil {
		s.answer(ctx, p, err)
		return
	}
	a := &attachment{p: p}
	t.attach(a)
	defer t.detach(a)
	input := t.writeInput(ctx)
	defer close(input)
	for {
		typ, payload, err := readFrame(p.r, nil)
		if err != nil {
			return // the host detached or went away
		}
		switch typ {
		case frameData:
			select {
			case input <- payload:
			default:
				// As a terminal whose input buffer is full discards what
				// is typed, rather than stop reading the host's stream.
				t.log.DebugContext(ctx, "terminal input dropped: the program does not read it", slog.Int(attrBytes, len(payload)))
			}
		case frameJSON:
			var m message
			if unmarshalMessage(payload, &m) != nil {
				return
			}
			switch m.Type {
			case msgResize:
				// The host checks sizes; a refusal here is only logged,
				// as the stream carries no replies.
				if err := t.resize(m.Cols, m.Rows); err != nil {
					t.log.DebugContext(ctx, "terminal resize", slog.Any(attrError, err))
				}
			case msgKill:
				t.kill()
			}
		}
	}
}

// inputQueue is how many input frames may wait for a program that does
// not read its terminal; past them, input is dropped.
const inputQueue = 256

// writeInput types what is sent on the channel it returns into the
// terminal, apart from the stream, so that a program that does not read
// its input cannot hold up a resize or a kill. It ends when the channel is
// closed or the terminal is.
func (t *terminal) writeInput(ctx context.Context) chan<- []byte {
	in := make(chan []byte, inputQueue)
	go func() {
		for b := range in {
			if _, err := t.ptmx.Write(b); err != nil {
				t.log.DebugContext(ctx, "terminal input", slog.Any(attrError, err))
				for range in { // the terminal is closed: drop the rest
				}
				return
			}
		}
	}()
	return in
}

func (ts *terminals) get(tag string) (*terminal, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t := ts.byTag[tag]
	if t == nil { // absent, or a place reserve took for a terminal still starting
		return nil, wrenn.Errorf(wrenn.ENotFound, "no terminal %q in this sandbox", tag)
	}
	return t, nil
}

func (ts *terminals) remove(t *terminal) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.byTag[t.tag] == t {
		delete(ts.byTag, t.tag)
	}
}

// closeAll kills every terminal and waits for their goroutines: for tests.
func (ts *terminals) closeAll() {
	ts.mu.Lock()
	ts.closed = true
	all := make([]*terminal, 0, len(ts.byTag))
	for _, t := range ts.byTag {
		if t != nil {
			all = append(all, t)
		}
	}
	ts.mu.Unlock()
	for _, t := range all {
		t.kill()
		t.mu.Lock()
		if t.linger != nil && t.linger.Stop() {
			ts.remove(t)
			ts.wg.Done()
		}
		t.mu.Unlock()
	}
	ts.wg.Wait()
}

// start starts the program req asks for on a new terminal.
func (ts *terminals) start(log *slog.Logger, req *ptyParams) (*terminal, error) {
	cols, rows, err := termSize(req.Cols, req.Rows, true)
	if err != nil {
		return nil, err
	}
	cmd, err := terminalCommand(req)
	if err != nil {
		return nil, err
	}
	tag, err := ts.reserve()
	if err != nil {
		return nil, err
	}
	var ptmx *os.File
	err = startProcess(func() (err error) {
		ptmx, err = pty.StartWithAttrs(cmd, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)}, cmd.SysProcAttr)
		return err
	})
	if err != nil {
		ts.release(tag)
		if se, ok := errors.AsType[*startError](startFailure(cmd.Args[0], err)); ok {
			return nil, wrenn.Errorf(wrenn.EInvalid, "%s", se.msg)
		}
		return nil, fmt.Errorf("start terminal: %w", err)
	}
	if ptmx, err = pollable(ptmx); err != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		ts.release(tag)
		return nil, fmt.Errorf("start terminal: %w", err)
	}
	t := &terminal{tag: tag, pid: cmd.Process.Pid, ptmx: ptmx, ts: ts,
		log: log.With(slog.String(attrTag, tag), slog.Int(attrPID, cmd.Process.Pid))}
	ts.mu.Lock()
	ts.byTag[tag] = t
	ts.mu.Unlock()
	t.log.Debug("terminal started", slog.String(attrCmd, cmd.Path))
	read := make(chan struct{})
	ts.wg.Add(2) // the reader; the waiter until the terminal is dropped
	go func() {
		defer ts.wg.Done()
		defer close(read)
		t.readOutput()
	}()
	go t.wait(cmd, read)
	return t, nil
}

// reserve takes a place for a new terminal and picks its tag.
func (ts *terminals) reserve() (string, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.byTag) >= maxTerminals {
		return "", wrenn.Errorf(wrenn.EConflict, "this sandbox already has %d terminals; kill one first", maxTerminals)
	}
	for {
		var b [terminalTagSize]byte
		rand.Read(b[:])
		tag := "pty-" + hex.EncodeToString(b[:])
		if _, taken := ts.byTag[tag]; !taken {
			ts.byTag[tag] = nil
			return tag, nil
		}
	}
}

func (ts *terminals) release(tag string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	delete(ts.byTag, tag)
}

// terminalCommand builds the program req asks for. With args, or a cmd that
// is a plain program name, it runs directly; any other cmd is a shell
// command line, run by /bin/sh -c.
func terminalCommand(req *ptyParams) (*exec.Cmd, error) {
	p := &execParams{Cmd: req.Cmd, Args: req.Args, Dir: req.Dir}
	if p.Cmd == "" {
		p.Cmd = defaultTermCmd
	}
	env := map[string]string{"TERM": defaultTermType}
	u, err := terminalUser(req.User)
	if err != nil {
		return nil, err
	}
	if u != nil {
		env["HOME"], env["USER"], env["LOGNAME"] = u.HomeDir, u.Username, u.Username
		if fi, err := os.Stat(u.HomeDir); p.Dir == "" && (err != nil || !fi.IsDir()) {
			p.Dir = "/" // a system user's home, such as nobody's /nonexistent
		} else if p.Dir == "" {
			p.Dir = u.HomeDir
		}
	}
	for k, v := range req.Env {
		env[k] = v
	}
	p.Env = env
	cmd, err := terminalProgram(p)
	if err != nil {
		if se, ok := errors.AsType[*startError](err); ok {
			return nil, wrenn.Errorf(wrenn.EInvalid, "%s", se.msg)
		}
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if u != nil {
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if gids, err := u.GroupIds(); err == nil {
			for _, g := range gids {
				if n, err := strconv.ParseUint(g, 10, 32); err == nil {
					cred.Groups = append(cred.Groups, uint32(n))
				}
			}
		}
		cmd.SysProcAttr.Credential = cred
	}
	return cmd, nil
}

// terminalUser looks the user up; root (or none named) is nil.
func terminalUser(name string) (*user.User, error) {
	if name == "" || name == "root" {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, wrenn.Errorf(wrenn.EInvalid, "user %q does not exist in this sandbox", name)
	}
	if u.Uid == "0" {
		return nil, nil
	}
	return u, nil
}

// termSize checks a terminal size; zeros are the defaults when start is set.
func termSize(cols, rows int, start bool) (int, int, error) {
	if start {
		if cols == 0 {
			cols = defaultCols
		}
		if rows == 0 {
			rows = defaultRows
		}
	}
	if cols < 1 || cols > wrenn.MaxTerminalCols || rows < 1 || rows > wrenn.MaxTerminalRows {
		return 0, 0, wrenn.Errorf(wrenn.EInvalid, "cols must be between 1 and %d and rows between 1 and %d", wrenn.MaxTerminalCols, wrenn.MaxTerminalRows)
	}
	return cols, rows, nil
}

func (t *terminal) resize(cols, rows int) error {
	cols, rows, err := termSize(cols, rows, false)
	if err != nil {
		return err
	}
	rc, err := t.ptmx.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			err = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Col: uint16(cols), Row: uint16(rows)})
		})
		err = cmp.Or(cerr, err)
	}
	if err != nil {
		return fmt.Errorf("resize terminal: %w", err)
	}
	return nil
}

// pollable returns f's descriptor as a file in Go's poller, closing f.
// creack/pty leaves the terminal's master side in blocking mode, where a
// read or write that waits cannot be interrupted by closing it: a program
// that never reads its input, or background jobs that keep the terminal
// open, would hold goroutines forever.
func pollable(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("dup terminal: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("terminal: %w", err)
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), nil
}

// attach makes a the terminal's host: it gets the started message, the
// output nobody has taken, then output as it comes (and the exit, if the
// program has ended already). A host attached before is cut off.
func (t *terminal) attach(a *attachment) {
	t.mu.Lock()
	old := t.att
	t.att = a
	backlog := t.backlog
	t.backlog = nil
	exited, code := t.exited, t.exitCode
	if t.linger != nil && exited {
		// The exit is delivered now: the terminal goes, from the table
		// before the exit is sent, so one who has it cannot find it.
		if t.linger.Stop() {
			t.ts.remove(t)
			defer t.ts.wg.Done()
		}
		t.linger = nil
	}
	a.wmu.Lock() // before any output the reader sends
	t.mu.Unlock()
	defer a.wmu.Unlock()
	if old != nil {
		old.send(message{Type: msgError, Code: wrenn.EConflict, Message: "another client attached to this terminal"})
		old.cut()
		old.p.st.Close()
	}
	if a.sendLocked(message{Type: msgStarted, Tag: t.tag, PID: t.pid}) != nil {
		return
	}
	for len(backlog) > 0 {
		n := min(len(backlog), outputChunkSize)
		if a.writeLocked(frameStdout, backlog[:n]) != nil {
			return
		}
		backlog = backlog[n:]
	}
	if exited {
		a.sendLocked(message{Type: msgExit, ExitCode: code})
	}
}

// detach lets a go; output is kept for the next host. A program that has
// exited and whose exit a did not take waits terminalLinger for one.
func (t *terminal) detach(a *attachment) {
	a.cut()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.att != a {
		return
	}
	t.att = nil
}

// readOutput passes the terminal's output to the host attached, or keeps
// it until one attaches. It ends when every holder of the terminal's
// other side has closed it (EIO) or the terminal is closed.
func (t *terminal) readOutput() {
	buf := make([]byte, outputChunkSize)
	for {
		n, err := t.ptmx.Read(buf)
		if n > 0 {
			t.output(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

func (t *terminal) output(b []byte) {
	for {
		t.mu.Lock()
		a := t.att
		if a == nil {
			t.keep(b)
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
		if a.write(frameStdout, b) == nil {
			return
		}
		t.mu.Lock()
		if t.att == a {
			t.att = nil
		}
		t.mu.Unlock()
	}
}

// keep adds b to the backlog, dropping its oldest bytes past the bound.
func (t *terminal) keep(b []byte) {
	t.backlog = append(t.backlog, b...)
	if over := len(t.backlog) - terminalBacklog; over > 0 {
		n := copy(t.backlog, t.backlog[over:])
		t.backlog = t.backlog[:n]
	}
}

// wait reaps the program, lets its output drain, and reports its exit to
// the host attached; with none, the terminal lingers for one.
func (t *terminal) wait(cmd *exec.Cmd, read <-chan struct{}) {
	err := cmd.Wait()
	// Programs the terminal's program left behind may hold the terminal
	// open: give them a moment, then close it under them.
	select {
	case <-read:
	case <-time.After(terminalDrain):
		t.ptmx.Close()
		<-read
	}
	t.ptmx.Close()
	code := -1
	if cmd.ProcessState != nil {
		code = exitCode(cmd.ProcessState)
	} else {
		t.log.Warn("terminal: wait", slog.Any(attrError, err))
	}
	t.log.Debug("terminal exited", slog.Int(attrCode, code))
	t.mu.Lock()
	t.exited, t.exitCode = true, code
	a := t.att
	t.ts.mu.Lock()
	closed := t.ts.closed
	t.ts.mu.Unlock()
	if a == nil && !closed {
		t.linger = time.AfterFunc(terminalLinger, func() {
			t.mu.Lock()
			t.linger = nil
			t.mu.Unlock()
			t.drop()
		})
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	// Gone from the table before the exit is sent: a host that has the
	// exit does not find the terminal.
	t.ts.remove(t)
	if a != nil {
		a.send(message{Type: msgExit, ExitCode: code})
	}
	t.ts.wg.Done()
}

// drop forgets the terminal, whose program has exited.
func (t *terminal) drop() {
	t.ts.remove(t)
	t.ts.wg.Done()
}

// kill ends the terminal's program with SIGKILL, with every process of its
// session and process group: what it started, in the foreground or not.
func (t *terminal) kill() {
	t.mu.Lock()
	exited := t.exited
	t.mu.Unlock()
	if exited {
		return
	}
	syscall.Kill(-t.pid, syscall.SIGKILL)
	for _, pid := range sessionMembers(t.pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// sessionMembers lists the processes whose session is sid, from /proc.
func sessionMembers(sid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp session ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 3 && f[3] == strconv.Itoa(sid) {
			out = append(out, pid)
		}
	}
	return out
}

// terminalProgram is command(p), except that a cmd without args that is
// a plain program name (such as /bin/bash) runs directly, not through a
// shell: the terminal's pid is then the program's.
func terminalProgram(p *execParams) (*exec.Cmd, error) {
	if len(p.Args) > 0 || p.Cmd == "" || strings.ContainsAny(p.Cmd, " \t\n\x00;&|<>()$`'\"*?[]~{}\\=#%") {
		return command(p)
	}
	env, err := commandEnv(p.Env)
	if err != nil {
		return nil, err
	}
	dir, err := workDir(p.Dir)
	if err != nil {
		return nil, err
	}
	path, err := lookPath(p.Cmd, pathOf(env), dir)
	if err != nil {
		return nil, err
	}
	return &exec.Cmd{Path: path, Args: []string{p.Cmd}, Env: env, Dir: dir}, nil
}
