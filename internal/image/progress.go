package image

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress writes human-readable progress: a line when a step starts and
// one when it ends, with its time. In between, a step may report status
// (the file being compiled, the package being unpacked): on a terminal it
// rewrites one line; elsewhere (CI logs) it prints at most every
// statusEvery, so logs stay short.
type progress struct {
	w   io.Writer // nil: quiet
	tty bool
	now func() time.Time

	mu       sync.Mutex
	lastLine time.Time
	dirty    bool // a status line is on screen without a newline
}

const statusEvery = 20 * time.Second

func newProgress(w io.Writer, now func() time.Time) *progress {
	p := &progress{w: w, now: now}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) printf(format string, args ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *progress) clearLocked() {
	if p.dirty {
		fmt.Fprint(p.w, "\r\033[K")
		p.dirty = false
	}
}

// note prints a line that belongs to no step.
func (p *progress) note(format string, args ...any) { p.printf(format, args...) }

// step announces a step; call done on the result when it ends.
func (p *progress) step(name string) *step {
	p.printf("==> %s", name)
	return &step{p: p, name: name, start: p.now()}
}

type step struct {
	p     *progress
	name  string
	start time.Time
}

// status reports what the step is doing now.
func (s *step) status(format string, args ...any) {
	p := s.p
	if p.w == nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
	el := roundDur(p.now().Sub(s.start))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		p.clearLocked()
		line := fmt.Sprintf("    [%s] %s", el, msg)
		if len(line) > 110 {
			line = line[:110]
		}
		fmt.Fprint(p.w, line)
		p.dirty = true
		return
	}
	if now := p.now(); now.Sub(p.lastLine) >= statusEvery {
		p.lastLine = now
		fmt.Fprintf(p.w, "    [%s] %s\n", el, strings.TrimSpace(msg))
	}
}

// done ends the step, saying how long it took and whether it failed.
func (s *step) done(err error) {
	el := roundDur(s.p.now().Sub(s.start))
	if err != nil {
		s.p.printf("    %s failed after %s", s.name, el)
		return
	}
	s.p.printf("    done in %s", el)
}

func roundDur(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Second)
}
