package envd

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"github.com/wrennhq/wrenn"
)

// MaxOutput is how much of each of stdout and stderr a blocking Exec keeps;
// the guest drops the rest and says so on stderr.
const MaxOutput = wrenn.MaxExecOutput

// outputSlack is room past MaxOutput for the guest's notes on stderr.
const outputSlack = 64 << 10

func execParamsOf(req wrenn.ExecRequest) (*execParams, error) {
	if req.Cmd == "" {
		return nil, wrenn.Errorf(wrenn.EInvalid, "cmd is required")
	}
	if req.Timeout < 0 {
		return nil, wrenn.Errorf(wrenn.EInvalid, "timeout must not be negative")
	}
	return &execParams{Cmd: req.Cmd, Args: req.Args, Env: req.Env, Dir: req.Dir, TimeoutNS: int64(req.Timeout)}, nil
}

// Exec runs a command to its end and returns its output. A program that
// cannot be found or run is a result (exit code 127 or 126, the reason on
// stderr), not an error; so is a timeout (exit code 124). Cancelling ctx
// kills the command's process group.
func (c *Client) Exec(ctx context.Context, req wrenn.ExecRequest) (*wrenn.ExecResult, error) {
	p, err := execParamsOf(req)
	if err != nil {
		return nil, err
	}
	p.OutputLimit = MaxOutput
	p.NoStart = true
	cl, err := c.open(ctx, opExec, request{Op: opExec, Exec: p})
	if err != nil {
		return nil, err
	}
	defer cl.close()

	// A guest from an older image still sends start first; it is skipped.
	res := &wrenn.ExecResult{}
	for {
		typ, n, err := readHeader(cl.r)
		if err != nil {
			return nil, cl.fail(noEOF(err))
		}
		switch typ {
		case frameStdout:
			res.Stdout, err = appendBounded(cl, res.Stdout, n)
		case frameStderr:
			res.Stderr, err = appendBounded(cl, res.Stderr, n)
		case frameJSON:
			var m message
			if err := decodeMessage(cl, n, &m); err != nil {
				return nil, err
			}
			switch m.Type {
			case msgStart:
				continue
			case msgFailed:
				return &wrenn.ExecResult{Stderr: []byte(m.Message + "\n"), ExitCode: m.ExitCode}, nil
			case msgExit:
				res.ExitCode, res.Duration = m.ExitCode, time.Duration(m.DurationNS)
				return res, nil
			}
			return nil, cl.check(m)
		default:
			return nil, cl.fail(fmt.Errorf("%w: %q during exec", errBadFrame, typ))
		}
		if err != nil {
			return nil, err
		}
	}
}

// appendBounded reads an n-byte payload onto b, dropping what would take b
// past MaxOutput+outputSlack: the guest is trusted to cap output, not relied on.
func appendBounded(cl *call, b []byte, n int) ([]byte, error) {
	keep := min(n, max(0, MaxOutput+outputSlack-len(b)))
	b = slices.Grow(b, keep)[:len(b)+keep]
	if _, err := io.ReadFull(cl.r, b[len(b)-keep:]); err != nil {
		return nil, cl.fail(noEOF(err))
	}
	if _, err := cl.r.Discard(n - keep); err != nil {
		return nil, cl.fail(noEOF(err))
	}
	return b, nil
}

func decodeMessage(cl *call, n int, m *message) error {
	payload, err := readPayload(cl.r, nil, n)
	if err != nil {
		return cl.fail(err)
	}
	if err := unmarshalMessage(payload, m); err != nil {
		return cl.fail(err)
	}
	return nil
}

// Stream is one streamed command. Recv is for one goroutine; Stop and
// Close may be called from any.
type Stream struct{ events }

// events reads a command's events off a call: a first event the opening
// answer gave, output chunks as they come, then its exit. A streamed
// command (Stream) and an attached background process (ProcessStream)
// read the same frames.
type events struct {
	cl     *call
	first  *wrenn.ExecEvent // start or failed, returned by the first Recv
	done   atomic.Bool      // the last event has been received
	err    error            // sticky error of Recv
	during string           // what the call is, for errors ("exec")
}

// StartExec starts a command and returns its events. It returns once the
// guest has answered: an invalid request is an error here; a program that
// could not be started is an ExecFailed event. Cancelling ctx kills the
// command's process group and ends the stream.
func (c *Client) StartExec(ctx context.Context, req wrenn.ExecRequest) (*Stream, error) {
	p, err := execParamsOf(req)
	if err != nil {
		return nil, err
	}
	cl, err := c.open(ctx, opExec, request{Op: opExec, Exec: p})
	if err != nil {
		return nil, err
	}
	m, err := cl.message()
	if err != nil {
		cl.close()
		return nil, err
	}
	s := &Stream{events{cl: cl, during: "exec"}}
	switch m.Type {
	case msgStart:
		s.first = &wrenn.ExecEvent{Type: wrenn.ExecStarted, PID: m.PID}
	case msgFailed:
		s.first = &wrenn.ExecEvent{Type: wrenn.ExecFailed, Data: []byte(m.Message)}
	default:
		cl.close()
		return nil, cl.check(m)
	}
	return s, nil
}

// Recv returns the next event: start (or failed), output chunks as they
// come, then exit. After exit or failed it returns io.EOF. A stream cut off
// before its exit event is an error, never io.EOF.
func (s *events) Recv() (wrenn.ExecEvent, error) {
	if s.first != nil {
		ev := *s.first
		s.first = nil
		if ev.Type == wrenn.ExecFailed {
			s.finish()
		}
		return ev, nil
	}
	if s.done.Load() {
		return wrenn.ExecEvent{}, io.EOF
	}
	if s.err == nil && s.cl.ctx.Err() != nil {
		s.err = s.cl.fail(s.cl.ctx.Err())
		s.cl.close()
	}
	if s.err != nil {
		return wrenn.ExecEvent{}, s.err
	}
	ev, err := s.next()
	if err != nil {
		s.err = err
		s.cl.close()
	}
	return ev, err
}

func (s *events) next() (wrenn.ExecEvent, error) {
	cl := s.cl
	typ, n, err := readHeader(cl.r)
	if err != nil {
		return wrenn.ExecEvent{}, cl.fail(noEOF(err))
	}
	switch typ {
	case frameStdout, frameStderr:
		if n > outputChunkSize {
			return wrenn.ExecEvent{}, cl.fail(fmt.Errorf("%w: %d-byte output chunk", errBadFrame, n))
		}
		data, err := readPayload(cl.r, nil, n)
		if err != nil {
			return wrenn.ExecEvent{}, cl.fail(err)
		}
		t := wrenn.ExecStdout
		if typ == frameStderr {
			t = wrenn.ExecStderr
		}
		return wrenn.ExecEvent{Type: t, Data: data}, nil
	case frameJSON:
		var m message
		if err := decodeMessage(cl, n, &m); err != nil {
			return wrenn.ExecEvent{}, err
		}
		if m.Type != msgExit {
			return wrenn.ExecEvent{}, cl.check(m)
		}
		s.finish()
		return wrenn.ExecEvent{Type: wrenn.ExecExited, ExitCode: m.ExitCode}, nil
	}
	return wrenn.ExecEvent{}, cl.fail(fmt.Errorf("%w: %q during %s", errBadFrame, typ, s.during))
}

func (s *events) finish() {
	s.done.Store(true)
	s.cl.close()
}

// Stop asks the command to end: SIGTERM to its process group, then SIGKILL
// after a grace period. Stopping a command that has ended does nothing.
func (s *Stream) Stop() error {
	if s.done.Load() {
		return nil
	}
	if err := writeJSON(s.cl.st, message{Type: msgStop}); err != nil {
		if s.done.Load() {
			return nil
		}
		return s.cl.fail(err)
	}
	return nil
}

// Close releases the stream, killing the command's process group if it is
// still running.
func (s *Stream) Close() error {
	s.cl.close()
	return nil
}
