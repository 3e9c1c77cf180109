package control

import (
	"context"
	"io"
	"path"
	"strings"

	"github.com/wrennhq/wrenn"
)

const maxPathLen = 4096

// ValidatePath checks that p is an absolute, clean-enough guest path.
func ValidatePath(p string) error {
	switch {
	case p == "":
		return wrenn.Errorf(wrenn.EInvalid, "path must not be empty")
	case !path.IsAbs(p):
		return wrenn.Errorf(wrenn.EInvalid, "path must be absolute")
	case len(p) > maxPathLen:
		return wrenn.Errorf(wrenn.EInvalid, "path must be at most %d bytes", maxPathLen)
	case strings.ContainsRune(p, 0):
		return wrenn.Errorf(wrenn.EInvalid, "path must not contain NUL")
	}
	return nil
}

// WriteFile streams r into a file in a running sandbox.
func (s *Service) WriteFile(ctx context.Context, teamID, id, p string, r io.Reader) error {
	if err := ValidatePath(p); err != nil {
		return err
	}
	sb, agent, err := s.running(ctx, teamID, id)
	if err != nil {
		return err
	}
	defer s.busy(ctx, sb)()
	if err := agent.WriteFile(ctx, id, p, r); err != nil {
		return s.agentError(ctx, "write the file", id, err)
	}
	return nil
}

// ReadFile opens a file in a running sandbox for streaming out. The
// sandbox counts as active until the file is closed.
func (s *Service) ReadFile(ctx context.Context, teamID, id, p string) (io.ReadCloser, error) {
	if err := ValidatePath(p); err != nil {
		return nil, err
	}
	sb, agent, err := s.running(ctx, teamID, id)
	if err != nil {
		return nil, err
	}
	done := s.busy(ctx, sb)
	rc, err := agent.ReadFile(ctx, id, p)
	if err != nil {
		done()
		return nil, s.agentError(ctx, "read the file", id, err)
	}
	return &busyReader{ReadCloser: rc, done: done}, nil
}
