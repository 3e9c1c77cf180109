package envd

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/wrennhq/wrenn"
)

var _ wrenn.Terminal = (*Terminal)(nil)

// Terminal is the host's attachment to one terminal in the guest. Recv is
// for one goroutine; the other methods may be called from any.
type Terminal struct {
	cl      *call
	started wrenn.TerminalEvent // returned by the first Recv
	first   bool
	done    atomic.Bool // the exit has been received
	err     error       // sticky error of Recv

	wmu sync.Mutex // one frame at a time to the guest
}

// OpenTerminal starts a terminal in the guest (req.Tag empty) or attaches
// to the one tagged req.Tag. It returns once the guest has answered: an
// unknown tag is ENotFound, a program that cannot be started EInvalid.
// Closing the Terminal, or cancelling ctx, detaches: the terminal's program
// keeps running.
func (c *Client) OpenTerminal(ctx context.Context, req wrenn.TerminalRequest) (*Terminal, error) {
	p := &ptyParams{Tag: req.Tag}
	if req.Tag == "" {
		p = &ptyParams{Cmd: req.Cmd, Args: req.Args, Env: req.Env, Dir: req.Dir, User: req.User, Cols: req.Cols, Rows: req.Rows}
	}
	cl, err := c.open(ctx, opPty, request{Op: opPty, Pty: p})
	if err != nil {
		return nil, err
	}
	m, err := cl.message()
	if err != nil {
		cl.close()
		return nil, err
	}
	if m.Type != msgStarted {
		cl.close()
		return nil, cl.check(m)
	}
	return &Terminal{cl: cl, first: true,
		started: wrenn.TerminalEvent{Type: wrenn.TerminalStarted, Tag: m.Tag, PID: m.PID}}, nil
}

// Recv returns started, then output as it comes, then exit; after the exit
// it returns io.EOF. A stream cut off before the exit is an error.
func (t *Terminal) Recv() (wrenn.TerminalEvent, error) {
	if t.first {
		t.first = false
		return t.started, nil
	}
	if t.done.Load() {
		return wrenn.TerminalEvent{}, io.EOF
	}
	if t.err != nil {
		return wrenn.TerminalEvent{}, t.err
	}
	ev, err := t.next()
	if err != nil {
		t.err = err
		t.cl.close()
	}
	return ev, err
}

func (t *Terminal) next() (wrenn.TerminalEvent, error) {
	cl := t.cl
	typ, n, err := readHeader(cl.r)
	if err != nil {
		return wrenn.TerminalEvent{}, cl.fail(noEOF(err))
	}
	switch typ {
	case frameStdout:
		data, err := readPayload(cl.r, nil, n)
		if err != nil {
			return wrenn.TerminalEvent{}, cl.fail(err)
		}
		return wrenn.TerminalEvent{Type: wrenn.TerminalOutput, Data: data}, nil
	case frameJSON:
		var m message
		if err := decodeMessage(cl, n, &m); err != nil {
			return wrenn.TerminalEvent{}, err
		}
		if m.Type != msgExit {
			return wrenn.TerminalEvent{}, cl.check(m)
		}
		t.done.Store(true)
		t.cl.close()
		return wrenn.TerminalEvent{Type: wrenn.TerminalExited, ExitCode: m.ExitCode}, nil
	}
	return wrenn.TerminalEvent{}, cl.fail(fmt.Errorf("%w: %q on a terminal", errBadFrame, typ))
}

// Input types data into the terminal, in frames of at most 32 KiB.
func (t *Terminal) Input(data []byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	for len(data) > 0 {
		n := min(len(data), outputChunkSize)
		if err := writeFrame(t.cl.st, frameData, data[:n]); err != nil {
			return t.cl.fail(err)
		}
		data = data[n:]
	}
	return nil
}

// Resize sets the terminal's size; the guest refuses a size out of bounds.
func (t *Terminal) Resize(cols, rows int) error {
	if _, _, err := termSize(cols, rows, false); err != nil {
		return err
	}
	return t.send(message{Type: msgResize, Cols: cols, Rows: rows})
}

// Kill ends the terminal's program and its whole session with SIGKILL; the
// exit follows.
func (t *Terminal) Kill() error { return t.send(message{Type: msgKill}) }

func (t *Terminal) send(m message) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if err := writeJSON(t.cl.st, m); err != nil {
		return t.cl.fail(err)
	}
	return nil
}

// Close detaches from the terminal, which keeps running in the guest.
func (t *Terminal) Close() error {
	t.cl.close()
	return nil
}
