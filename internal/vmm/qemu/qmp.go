package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// qmp is a minimal client of the QEMU Machine Protocol: one command at a
// time, asynchronous events skipped.
type qmp struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

type qmpError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *qmpError) Error() string { return "qmp: " + e.Class + ": " + e.Desc }

// dialQMP connects to the QMP socket at path, retrying until it appears or
// ctx ends, and negotiates capabilities.
func dialQMP(ctx context.Context, path string) (*qmp, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			q := &qmp{conn: conn, r: bufio.NewReader(conn)}
			if err := q.handshake(ctx); err != nil {
				conn.Close()
				return nil, err
			}
			return q, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dial qmp: %w", errors.Join(ctx.Err(), err))
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (q *qmp) handshake(ctx context.Context) error {
	q.setDeadline(ctx)
	var greeting struct {
		QMP json.RawMessage `json:"QMP"`
	}
	line, err := q.r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read qmp greeting: %w", err)
	}
	if err := json.Unmarshal(line, &greeting); err != nil || greeting.QMP == nil {
		return fmt.Errorf("unexpected qmp greeting %q", line)
	}
	return q.execute(ctx, "qmp_capabilities", nil, nil)
}

func (q *qmp) setDeadline(ctx context.Context) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(30 * time.Second)
	}
	_ = q.conn.SetDeadline(dl)
}

// Execute runs one command and decodes its return value into out (if not nil).
func (q *qmp) Execute(ctx context.Context, cmd string, args, out any) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.setDeadline(ctx)
	return q.execute(ctx, cmd, args, out)
}

// ExecuteFD runs one command with f passed alongside it (SCM_RIGHTS), as
// getfd wants.
func (q *qmp) ExecuteFD(ctx context.Context, cmd string, args any, f *os.File) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.setDeadline(ctx)
	return q.send(cmd, args, nil, f)
}

func (q *qmp) execute(_ context.Context, cmd string, args, out any) error {
	return q.send(cmd, args, out, nil)
}

func (q *qmp) send(cmd string, args, out any, f *os.File) error {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if f != nil {
		uc, ok := q.conn.(*net.UnixConn)
		if !ok {
			return fmt.Errorf("qmp %s: passing a file needs a Unix socket", cmd)
		}
		_, _, err = uc.WriteMsgUnix(b, unix.UnixRights(int(f.Fd())), nil)
	} else {
		_, err = q.conn.Write(b)
	}
	if err != nil {
		return fmt.Errorf("qmp %s: %w", cmd, err)
	}
	for {
		line, err := q.r.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("qmp %s: %w", cmd, err)
		}
		var resp struct {
			Return json.RawMessage `json:"return"`
			Error  *qmpError       `json:"error"`
			Event  string          `json:"event"`
		}
		if err := json.Unmarshal(line, &resp); err != nil {
			return fmt.Errorf("qmp %s: decode %q: %w", cmd, line, err)
		}
		switch {
		case resp.Event != "":
			continue
		case resp.Error != nil:
			return fmt.Errorf("qmp %s: %w", cmd, resp.Error)
		case out != nil:
			return json.Unmarshal(resp.Return, out)
		default:
			return nil
		}
	}
}

func (q *qmp) Close() error { return q.conn.Close() }
