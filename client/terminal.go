package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
)

// TerminalOptions starts a terminal. Zero values are the server's
// defaults: /bin/bash, 80x24, TERM=xterm-256color, root, its home.
type TerminalOptions struct {
	// Cmd is the program; one that is not a plain program name, with no
	// Args, runs as a /bin/sh -c command line.
	Cmd  string            `json:"cmd,omitempty"`
	Args []string          `json:"args,omitempty"`
	Cols int               `json:"cols,omitempty"`
	Rows int               `json:"rows,omitempty"`
	Envs map[string]string `json:"envs,omitempty"`
	Cwd  string            `json:"cwd,omitempty"`
	User string            `json:"user,omitempty"`
}

// TerminalEventType names what a TerminalEvent carries.
type TerminalEventType string

const (
	TerminalOutput TerminalEventType = "output" // Data
	TerminalExit   TerminalEventType = "exit"   // ExitCode; the last event
	// TerminalError is a message the server could not act on (a bad
	// resize); the session goes on. Message says why.
	TerminalError TerminalEventType = "error"
)

// TerminalEvent is one event of an attached terminal.
type TerminalEvent struct {
	Type     TerminalEventType
	Data     []byte // raw terminal bytes
	ExitCode int    // 128+n if killed by signal n
	Message  string
}

// Terminal is an attachment to an interactive terminal in a sandbox. Its
// program keeps running when the attachment closes; ConnectTerminal with
// Tag attaches again. Recv is for one goroutine; Write, Resize, Kill and
// Close may be called from any.
type Terminal struct {
	Tag string // names the session, for ConnectTerminal
	PID int    // the program's pid in the sandbox

	ws   *wsConn
	done bool
}

type ptyMessage struct {
	Type     string  `json:"type"`
	Tag      string  `json:"tag"`
	PID      int     `json:"pid"`
	Data     *string `json:"data"`
	ExitCode *int    `json:"exit_code"`
	Fatal    *bool   `json:"fatal"`
}

// Terminal starts a program on a new terminal and attaches to it.
func (c *Client) Terminal(ctx context.Context, id string, opts TerminalOptions) (*Terminal, error) {
	start := struct {
		Type string `json:"type"`
		TerminalOptions
	}{"start", opts}
	return c.openTerminal(ctx, id, start)
}

// ConnectTerminal attaches to a running terminal by its tag. It replays
// what the program printed while nobody was attached (the latest 256
// KiB), and cuts off any other attachment. An unknown tag is an *Error
// of CodeStream.
func (c *Client) ConnectTerminal(ctx context.Context, id, tag string) (*Terminal, error) {
	return c.openTerminal(ctx, id, map[string]string{"type": "connect", "tag": tag})
}

func (c *Client) openTerminal(ctx context.Context, id string, first any) (*Terminal, error) {
	ws, err := c.dial(ctx, sandboxPath(id, "/pty"), nil)
	if err != nil {
		return nil, err
	}
	t := &Terminal{ws: ws}
	if err := ws.write(first); err != nil {
		ws.close()
		return nil, fmt.Errorf("terminal open: %w", err)
	}
	for {
		m, err := t.next()
		if err != nil {
			ws.close()
			return nil, err
		}
		switch m.Type {
		case "started":
			t.Tag, t.PID = m.Tag, m.PID
			return t, nil
		case "error":
			ws.close()
			return nil, &Error{Code: CodeStream, Message: deref(m.Data)}
		}
	}
}

// finish marks the attachment ended and lets its connection go.
func (t *Terminal) finish() {
	t.done = true
	t.ws.close()
}

// next reads the next message.
func (t *Terminal) next() (ptyMessage, error) {
	b, err := t.ws.read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // closed before the exit event
		}
		return ptyMessage{}, err
	}
	var m ptyMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return ptyMessage{}, fmt.Errorf("terminal message: %w", err)
	}
	return m, nil
}

// Recv returns the next event. After the exit event it returns io.EOF; a
// fatal error from the server (the sandbox paused, another attachment
// took over) is an *Error of CodeStream.
func (t *Terminal) Recv() (TerminalEvent, error) {
	for {
		if t.done {
			t.ws.drain()
			return TerminalEvent{}, io.EOF
		}
		m, err := t.next()
		if err != nil {
			t.finish()
			return TerminalEvent{}, err
		}
		switch m.Type {
		case "output":
			data, err := base64.StdEncoding.DecodeString(deref(m.Data))
			if err != nil {
				t.finish()
				return TerminalEvent{}, fmt.Errorf("terminal output: %w", err)
			}
			return TerminalEvent{Type: TerminalOutput, Data: data}, nil
		case "exit":
			t.done = true // the server closes next: the next Recv waits for it
			ev := TerminalEvent{Type: TerminalExit}
			if m.ExitCode != nil {
				ev.ExitCode = *m.ExitCode
			}
			return ev, nil
		case "error":
			if m.Fatal != nil && *m.Fatal {
				t.finish()
				return TerminalEvent{}, &Error{Code: CodeStream, Message: deref(m.Data)}
			}
			return TerminalEvent{Type: TerminalError, Message: deref(m.Data)}, nil
		}
		// "ping", a repeated "started", or a later server's message
	}
}

// Events iterates over the events until the exit, or an error, which is
// yielded last.
func (t *Terminal) Events() iter.Seq2[TerminalEvent, error] {
	return func(yield func(TerminalEvent, error) bool) {
		for {
			ev, err := t.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if !yield(ev, err) || err != nil {
				return
			}
		}
	}
}

// Write types p into the terminal.
func (t *Terminal) Write(p []byte) (int, error) {
	if err := t.ws.write(map[string]string{"type": "input", "data": base64.StdEncoding.EncodeToString(p)}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Resize sets the terminal's size (each 1 to 4096).
func (t *Terminal) Resize(cols, rows int) error {
	return t.ws.write(struct {
		Type string `json:"type"`
		Cols int    `json:"cols"`
		Rows int    `json:"rows"`
	}{"resize", cols, rows})
}

// Kill ends the terminal's program and everything it started; the exit
// event follows.
func (t *Terminal) Kill() error { return t.ws.write(map[string]string{"type": "kill"}) }

// Close detaches; the program keeps running.
func (t *Terminal) Close() error { return t.ws.close() }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
