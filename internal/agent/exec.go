package agent

import (
	"context"
	"errors"
	"io"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/envd"
)

// Exec runs a command to completion in a running sandbox.
func (m *Manager) Exec(ctx context.Context, id string, req wrenn.ExecRequest) (*wrenn.ExecResult, error) {
	sb, c, err := m.client(id)
	if err != nil {
		return nil, err
	}
	res, err := c.Exec(ctx, req)
	return res, explain(sb, err)
}

// StartExec starts a streamed command in a running sandbox.
func (m *Manager) StartExec(ctx context.Context, id string, req wrenn.ExecRequest) (wrenn.ExecStream, error) {
	sb, c, err := m.client(id)
	if err != nil {
		return nil, err
	}
	st, err := c.StartExec(ctx, req)
	if err != nil {
		return nil, explain(sb, err)
	}
	return st, nil
}

// WriteFile streams r into a file of a running sandbox.
func (m *Manager) WriteFile(ctx context.Context, id, path string, r io.Reader) error {
	sb, c, err := m.client(id)
	if err != nil {
		return err
	}
	if b := sb.bulk(); b != nil { // the bulk data path (issue 14, bulk.go)
		var done bool
		if r, done, err = writeBulk(ctx, b, path, r); done {
			return explain(sb, err)
		}
	}
	return explain(sb, c.WriteFile(ctx, path, r))
}

// ReadFile streams a file out of a running sandbox.
func (m *Manager) ReadFile(ctx context.Context, id, path string) (io.ReadCloser, error) {
	sb, c, err := m.client(id)
	if err != nil {
		return nil, err
	}
	if b := sb.bulk(); b != nil { // the bulk data path (issue 14, bulk.go)
		rc, err := b.ReadFile(ctx, path)
		if !errors.Is(err, envd.ErrBulkUnavailable) {
			return rc, explain(sb, err)
		}
	}
	rc, err := c.ReadFile(ctx, path)
	if err != nil {
		return nil, explain(sb, err)
	}
	return rc, nil
}

// client returns sandbox id and its guest agent session, if it serves work.
func (m *Manager) client(id string) (*sandbox, *envd.Client, error) {
	sb, err := m.get(id)
	if err != nil {
		return nil, nil, err
	}
	c, err := sb.client()
	return sb, c, err
}

// explain turns the failure of an operation that a pause, snapshot or
// destroy cut off into the conflict it is, rather than a fault.
func explain(sb *sandbox, err error) error {
	if err == nil || wrenn.ErrorCode(err) != wrenn.EInternal {
		return err
	}
	// A pause cuts operations off before it is done: let it finish.
	sb.op.Lock()
	sb.op.Unlock() //nolint:staticcheck // waiting for the lifecycle operation, not guarding anything
	switch sb.lifecycle() {
	case lcPaused:
		return wrenn.Errorf(wrenn.EConflict, "the sandbox was paused")
	case lcGone, lcDestroying:
		return wrenn.Errorf(wrenn.EConflict, "the sandbox was destroyed or made into a template")
	case lcFailed:
		return wrenn.Errorf(wrenn.EConflict, "the sandbox stopped running")
	}
	return err
}

var _ wrenn.FileSystem = (*Manager)(nil)

// ListDir lists a directory of a running sandbox.
func (m *Manager) ListDir(ctx context.Context, id, path string, depth int) ([]wrenn.FileEntry, error) {
	sb, c, err := m.client(id)
	if err != nil {
		return nil, err
	}
	es, err := c.ListDir(ctx, path, depth)
	return es, explain(sb, err)
}

// MakeDir creates a directory in a running sandbox.
func (m *Manager) MakeDir(ctx context.Context, id, path string, parents bool) (wrenn.FileEntry, error) {
	sb, c, err := m.client(id)
	if err != nil {
		return wrenn.FileEntry{}, err
	}
	e, err := c.MakeDir(ctx, path, parents)
	return e, explain(sb, err)
}

// Remove removes a path, recursively, in a running sandbox.
func (m *Manager) Remove(ctx context.Context, id, path string) error {
	sb, c, err := m.client(id)
	if err != nil {
		return err
	}
	return explain(sb, c.Remove(ctx, path))
}

// Stat describes a path in a running sandbox.
func (m *Manager) Stat(ctx context.Context, id, path string) (wrenn.FileEntry, error) {
	sb, c, err := m.client(id)
	if err != nil {
		return wrenn.FileEntry{}, err
	}
	e, err := c.Stat(ctx, path)
	return e, explain(sb, err)
}

// Move renames a path in a running sandbox.
func (m *Manager) Move(ctx context.Context, id, src, dst string) (wrenn.FileEntry, error) {
	sb, c, err := m.client(id)
	if err != nil {
		return wrenn.FileEntry{}, err
	}
	e, err := c.Move(ctx, src, dst)
	return e, explain(sb, err)
}
