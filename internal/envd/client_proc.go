package envd

import (
	"context"
	"fmt"

	"github.com/wrennhq/wrenn"
)

// maxListedProcs bounds the listing the host takes from the guest, well
// past the guest's own bound on its table.
const maxListedProcs = 4 * maxProcs

// Spawn starts a background process in the guest and returns its pid and
// tag. A program that cannot be found or run is an EInvalid error; a tag a
// running process holds, EConflict; a full table, EQuotaExceeded.
func (c *Client) Spawn(ctx context.Context, req wrenn.ProcessRequest) (wrenn.Process, error) {
	p, err := execParamsOf(wrenn.ExecRequest{Cmd: req.Cmd, Args: req.Args, Env: req.Env, Dir: req.Dir})
	if err != nil {
		return wrenn.Process{}, err
	}
	cl, err := c.open(ctx, opSpawn, request{Op: opSpawn, Exec: p, Tag: req.Tag})
	if err != nil {
		return wrenn.Process{}, err
	}
	defer cl.close()
	m, err := cl.message()
	if err != nil {
		return wrenn.Process{}, err
	}
	if err := cl.check(m); err != nil {
		return wrenn.Process{}, err
	}
	if m.PID <= 0 || len(m.Tag) > maxTag {
		return wrenn.Process{}, fmt.Errorf("envd spawn: %w: pid %d, tag of %d bytes", errBadFrame, m.PID, len(m.Tag))
	}
	return wrenn.Process{PID: m.PID, Tag: m.Tag, Cmd: req.Cmd, Args: req.Args, Running: true}, nil
}

// Processes lists the guest's background processes, running and lately
// exited, oldest first.
func (c *Client) Processes(ctx context.Context) ([]wrenn.Process, error) {
	cl, err := c.open(ctx, opProcs, request{Op: opProcs})
	if err != nil {
		return nil, err
	}
	defer cl.close()
	var out []wrenn.Process
	for {
		m, err := cl.message()
		if err != nil {
			return nil, err
		}
		if m.Type != msgProcs {
			return out, cl.check(m)
		}
		if len(out)+len(m.Procs) > maxListedProcs {
			return nil, fmt.Errorf("envd procs: %w: over %d processes", errBadFrame, maxListedProcs)
		}
		for _, e := range m.Procs {
			out = append(out, wrenn.Process{PID: e.PID, Tag: e.Tag, Cmd: e.Cmd, Args: e.Args, Running: e.Running, ExitCode: e.ExitCode})
		}
	}
}

func selectorRequest(op string, sel wrenn.ProcessSelector) (request, error) {
	if sel.PID <= 0 && sel.Tag == "" {
		return request{}, wrenn.Errorf(wrenn.EInvalid, "a process is selected by a pid or a tag")
	}
	if sel.PID > 0 {
		return request{Op: op, PID: sel.PID}, nil
	}
	return request{Op: op, Tag: sel.Tag}, nil
}

// Kill ends a running background process's group (see wrenn.Signal) and
// returns once its leader has exited.
func (c *Client) Kill(ctx context.Context, sel wrenn.ProcessSelector, sig wrenn.Signal) error {
	req, err := selectorRequest(opKill, sel)
	if err != nil {
		return err
	}
	req.Signal = string(sig)
	cl, err := c.open(ctx, opKill, req)
	if err != nil {
		return err
	}
	defer cl.close()
	return cl.reply()
}

// ProcessStream is a background process's output, as Attach returns it.
// Recv is for one goroutine; Close may be called from any.
type ProcessStream struct{ events }

// Attach streams a background process's output: a start event, what the
// guest holds of its output (the last wrenn.MaxProcessOutput bytes), then
// live output and its exit. An exited process still in the table gives
// its output and exit at once.
func (c *Client) Attach(ctx context.Context, sel wrenn.ProcessSelector) (*ProcessStream, error) {
	req, err := selectorRequest(opAttach, sel)
	if err != nil {
		return nil, err
	}
	cl, err := c.open(ctx, opAttach, req)
	if err != nil {
		return nil, err
	}
	m, err := cl.message()
	if err != nil {
		cl.close()
		return nil, err
	}
	if m.Type != msgStart {
		cl.close()
		return nil, cl.check(m)
	}
	return &ProcessStream{events{cl: cl, during: "attach",
		first: &wrenn.ExecEvent{Type: wrenn.ExecStarted, PID: m.PID}}}, nil
}

// Close stops streaming; the process runs on.
func (s *ProcessStream) Close() error {
	s.cl.close()
	return nil
}

var _ wrenn.ProcessStream = (*ProcessStream)(nil)
