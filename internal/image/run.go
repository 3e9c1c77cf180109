package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// command is one external program a build step runs.
type command struct {
	Name string
	Args []string
	Dir  string
	Env  []string     // added to the builder's environment
	Log  io.Writer    // receives stdout and stderr; nil discards them
	Line func(string) // called with each output line, for progress
}

func (c command) String() string { return c.Name + " " + strings.Join(c.Args, " ") }

// runner runs a command to completion. Tests replace it with fakes.
type runner func(ctx context.Context, c command) error

// killGrace is how long a cancelled command gets between SIGTERM and
// SIGKILL: mmdebstrap unmounts its chroot on SIGTERM.
const killGrace = 15 * time.Second

// execRun runs c in a process group of its own. Cancelling ctx sends
// SIGTERM to the whole group (make's compilers, mmdebstrap's apt and dpkg),
// then SIGKILL after killGrace; nothing it started outlives it.
func execRun(ctx context.Context, c command) error { return execRunGrace(ctx, c, killGrace) }

func execRunGrace(ctx context.Context, c command, grace time.Duration) error {
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = grace
	lw := &lineWriter{log: c.Log, line: c.Line}
	cmd.Stdout, cmd.Stderr = lw, lw
	err := cmd.Run()
	lw.flush()
	if err != nil && cmd.Process != nil {
		// The leader is gone; make sure its children are too.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", c.Name, ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	return nil
}

// lineWriter copies output to a log and hands complete lines to a callback.
type lineWriter struct {
	log  io.Writer
	line func(string)

	mu  sync.Mutex
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.log != nil {
		if _, err := w.log.Write(p); err != nil {
			return 0, err
		}
	}
	if w.line == nil {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(bytes.TrimRight(w.buf[:i], "\r")))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.line != nil && len(w.buf) > 0 {
		w.line(string(w.buf))
	}
	w.buf = nil
}

// commandOutput runs a short query command and returns its trimmed stdout.
func commandOutput(ctx context.Context, name string, args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && stderr.Len() > 0 {
			return "", fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
		}
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}
