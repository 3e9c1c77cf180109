package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/url"
)

// ExecEventType names what an ExecEvent carries.
type ExecEventType string

const (
	EventStart  ExecEventType = "start"  // PID
	EventStdout ExecEventType = "stdout" // Data
	EventStderr ExecEventType = "stderr" // Data
	EventExit   ExecEventType = "exit"   // ExitCode; the last event
)

// ExecEvent is one event of a streamed command or background process.
type ExecEvent struct {
	Type     ExecEventType
	PID      int
	Data     []byte // raw bytes, decoded from base64 where the server sent them so
	ExitCode int
}

// streamMessage is a message of the exec and process streams.
type streamMessage struct {
	Type     string  `json:"type"`
	PID      *int    `json:"pid"`
	Data     *string `json:"data"`
	Encoding string  `json:"encoding"`
	ExitCode *int    `json:"exit_code"`
}

// events is what ExecStream and ProcessStream share: Recv, Events and
// Close over one WebSocket.
type events struct {
	ws   *wsConn
	done bool // after the exit event or an error: Recv answers io.EOF
}

// finish marks the stream failed and lets its connection go at once, so
// that a stream read to its end holds nothing even if never closed.
func (s *events) finish() {
	s.done = true
	s.ws.close()
}

// Recv returns the next event. After the exit event it returns io.EOF; a
// stream the server ends with an error message returns an *Error of
// CodeStream; a stream whose context ended, the context's error.
func (s *events) Recv() (ExecEvent, error) {
	for {
		if s.done {
			s.ws.drain()
			return ExecEvent{}, io.EOF
		}
		b, err := s.ws.read()
		if err != nil {
			s.finish()
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // closed before the exit event
			}
			return ExecEvent{}, err
		}
		var m streamMessage
		if err := json.Unmarshal(b, &m); err != nil {
			s.finish()
			return ExecEvent{}, fmt.Errorf("stream message: %w", err)
		}
		ev := ExecEvent{Type: ExecEventType(m.Type)}
		switch ev.Type {
		case EventStart:
			if m.PID != nil {
				ev.PID = *m.PID
			}
		case EventStdout, EventStderr:
			if m.Data != nil {
				if ev.Data, err = decodeData(*m.Data, m.Encoding); err != nil {
					s.finish()
					return ExecEvent{}, fmt.Errorf("stream %s: %w", m.Type, err)
				}
			}
		case EventExit:
			s.done = true // the server closes next: the next Recv waits for it
			if m.ExitCode != nil {
				ev.ExitCode = *m.ExitCode
			}
		case "error":
			s.finish()
			msg := ""
			if m.Data != nil {
				msg = *m.Data
			}
			return ExecEvent{}, &Error{Code: CodeStream, Message: msg}
		default:
			continue // a later server's message this client does not know
		}
		return ev, nil
	}
}

// Events iterates over the events until the exit event, or an error,
// which is yielded last.
func (s *events) Events() iter.Seq2[ExecEvent, error] {
	return func(yield func(ExecEvent, error) bool) {
		for {
			ev, err := s.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if !yield(ev, err) || err != nil {
				return
			}
		}
	}
}

// Close ends the stream at once.
func (s *events) Close() error { return s.ws.close() }

// ExecStream is a command streamed over a WebSocket. Recv is for one
// goroutine; Stop and Close may be called from any.
type ExecStream struct{ events }

// ExecStream starts a command and streams its output. Closing the stream
// (or ending ctx) before the exit stops the command too.
func (c *Client) ExecStream(ctx context.Context, id string, req ExecRequest) (*ExecStream, error) {
	ws, err := c.dial(ctx, sandboxPath(id, "/exec/stream"), nil)
	if err != nil {
		return nil, err
	}
	start := req.body()
	start.Type = "start"
	if err := ws.write(start); err != nil {
		ws.close()
		return nil, fmt.Errorf("exec stream start: %w", err)
	}
	return &ExecStream{events{ws: ws}}, nil
}

// Stop asks the server to stop the command (SIGTERM, then SIGKILL); its
// exit event follows.
func (s *ExecStream) Stop() error { return s.ws.write(map[string]string{"type": "stop"}) }

// ProcessStream is a background process's output: a start event, what the
// sandbox still holds of its output (the last 1 MiB), live output, then
// its exit. Closing it leaves the process running.
type ProcessStream struct{ events }

// ProcessStream streams a background process's output; selector is its
// pid (in decimal) or its tag. A process that exited in the last 10
// minutes can still be streamed.
func (c *Client) ProcessStream(ctx context.Context, id, selector string) (*ProcessStream, error) {
	ws, err := c.dial(ctx, sandboxPath(id, "/processes/"+url.PathEscape(selector)+"/stream"), nil)
	if err != nil {
		return nil, err
	}
	return &ProcessStream{events{ws: ws}}, nil
}
