package control

import (
	"context"

	"github.com/wrennhq/wrenn"
)

// The file system use cases: list, mkdir, remove, stat and move in a
// running sandbox of the caller's team. Each counts as activity while it
// runs, as file transfers do.

// ListDir lists the directory p depth levels deep; depth 0 is taken as 1,
// the directory's children, as the 0.1.5 contract has it.
func (s *Service) ListDir(ctx context.Context, teamID, id, p string, depth int) ([]wrenn.FileEntry, error) {
	if depth < 0 {
		return nil, wrenn.Errorf(wrenn.EInvalid, "depth must not be negative")
	}
	var out []wrenn.FileEntry
	err := s.withFileSystem(ctx, teamID, id, "list the directory", []string{p}, func(fsys wrenn.FileSystem) error {
		var err error
		out, err = fsys.ListDir(ctx, id, p, max(depth, 1))
		return err
	})
	return out, err
}

// MakeDir creates the directory p, with its missing parents if parents.
func (s *Service) MakeDir(ctx context.Context, teamID, id, p string, parents bool) (wrenn.FileEntry, error) {
	var out wrenn.FileEntry
	err := s.withFileSystem(ctx, teamID, id, "make the directory", []string{p}, func(fsys wrenn.FileSystem) error {
		var err error
		out, err = fsys.MakeDir(ctx, id, p, parents)
		return err
	})
	return out, err
}

// Remove removes p and everything under it.
func (s *Service) Remove(ctx context.Context, teamID, id, p string) error {
	return s.withFileSystem(ctx, teamID, id, "remove the path", []string{p}, func(fsys wrenn.FileSystem) error {
		return fsys.Remove(ctx, id, p)
	})
}

// Stat describes p itself.
func (s *Service) Stat(ctx context.Context, teamID, id, p string) (wrenn.FileEntry, error) {
	var out wrenn.FileEntry
	err := s.withFileSystem(ctx, teamID, id, "stat the path", []string{p}, func(fsys wrenn.FileSystem) error {
		var err error
		out, err = fsys.Stat(ctx, id, p)
		return err
	})
	return out, err
}

// Move renames src to dst, which must not exist.
func (s *Service) Move(ctx context.Context, teamID, id, src, dst string) (wrenn.FileEntry, error) {
	var out wrenn.FileEntry
	err := s.withFileSystem(ctx, teamID, id, "move the path", []string{src, dst}, func(fsys wrenn.FileSystem) error {
		var err error
		out, err = fsys.Move(ctx, id, src, dst)
		return err
	})
	return out, err
}

// withFileSystem checks paths, finds the caller's running sandbox and its
// agent's file system, and runs op with the sandbox marked busy.
func (s *Service) withFileSystem(ctx context.Context, teamID, id, what string, paths []string, op func(wrenn.FileSystem) error) error {
	for _, p := range paths {
		if err := ValidatePath(p); err != nil {
			return err
		}
	}
	sb, agent, err := s.running(ctx, teamID, id)
	if err != nil {
		return err
	}
	fsys, ok := agent.(wrenn.FileSystem)
	if !ok {
		return wrenn.Errorf(wrenn.EHostAgent, "the host agent cannot list or change a sandbox's files")
	}
	defer s.busy(ctx, sb)()
	if err := op(fsys); err != nil {
		return s.agentError(ctx, what, id, err)
	}
	return nil
}
