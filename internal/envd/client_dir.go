package envd

import (
	"context"
	"fmt"
	"time"

	"github.com/wrennhq/wrenn"
)

// ListDir lists the guest directory path depth levels deep (0 or 1: its
// children), each directory before its contents, in name order. A missing
// directory is a wrenn.ENotFound error, a file wrenn.EInvalid, a listing
// over maxListEntries wrenn.ETooLarge.
func (c *Client) ListDir(ctx context.Context, path string, depth int) ([]wrenn.FileEntry, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	if depth < 0 {
		return nil, wrenn.Errorf(wrenn.EInvalid, "depth must not be negative")
	}
	cl, err := c.open(ctx, opList, request{Op: opList, Path: path, Depth: depth})
	if err != nil {
		return nil, err
	}
	defer cl.close()
	var out []wrenn.FileEntry
	for {
		m, err := cl.message()
		if err != nil {
			return nil, err
		}
		if m.Type != msgList {
			if err := cl.check(m); err != nil {
				return nil, err
			}
			return out, nil
		}
		if len(out)+len(m.Entries) > maxListEntries {
			return nil, cl.fail(fmt.Errorf("%w: a listing over %d entries", errBadFrame, maxListEntries))
		}
		for _, e := range m.Entries {
			out = append(out, e.domain())
		}
	}
}

// MakeDir creates the guest directory path, with its missing parents if
// parents is set. An existing path is a wrenn.EConflict error, a missing
// parent wrenn.ENotFound.
func (c *Client) MakeDir(ctx context.Context, path string, parents bool) (wrenn.FileEntry, error) {
	return c.entryOp(ctx, request{Op: opMkdir, Path: path, Parents: parents})
}

// Remove removes path, and everything in it if it is a directory. A
// missing path is a wrenn.ENotFound error.
func (c *Client) Remove(ctx context.Context, path string) error {
	_, err := c.entryOp(ctx, request{Op: opRm, Path: path})
	return err
}

// Stat describes path itself (a symbolic link, not its target).
func (c *Client) Stat(ctx context.Context, path string) (wrenn.FileEntry, error) {
	return c.entryOp(ctx, request{Op: opStat, Path: path})
}

// Move renames src to dst. A missing src is a wrenn.ENotFound error, an
// existing dst wrenn.EConflict.
func (c *Client) Move(ctx context.Context, src, dst string) (wrenn.FileEntry, error) {
	if err := checkPath(dst); err != nil {
		return wrenn.FileEntry{}, err
	}
	return c.entryOp(ctx, request{Op: opMove, Path: src, Dest: dst})
}

// entryOp runs a one-reply operation on one path; its ok may carry an entry.
func (c *Client) entryOp(ctx context.Context, req request) (wrenn.FileEntry, error) {
	if err := checkPath(req.Path); err != nil {
		return wrenn.FileEntry{}, err
	}
	cl, err := c.open(ctx, req.Op, req)
	if err != nil {
		return wrenn.FileEntry{}, err
	}
	defer cl.close()
	m, err := cl.message()
	if err != nil {
		return wrenn.FileEntry{}, err
	}
	if err := cl.check(m); err != nil {
		return wrenn.FileEntry{}, err
	}
	if m.Entry == nil {
		if req.Op != opRm {
			return wrenn.FileEntry{}, cl.fail(fmt.Errorf("%w: %s answered without an entry", errBadFrame, req.Op))
		}
		return wrenn.FileEntry{}, nil
	}
	return m.Entry.domain(), nil
}

func (e entry) domain() wrenn.FileEntry {
	fe := wrenn.FileEntry{
		Name: e.Name, Path: e.Path, Type: e.Type, Size: e.Size, Mode: e.Mode,
		Permissions: e.Permissions, Owner: e.Owner, Group: e.Group,
		ModifiedAt:    time.Unix(0, e.ModifiedNS).UTC(),
		SymlinkTarget: e.SymlinkTarget,
	}
	switch fe.Type {
	case wrenn.FileTypeFile, wrenn.FileTypeDirectory, wrenn.FileTypeSymlink:
	default: // the guest is not trusted to keep to the contract's kinds
		fe.Type = wrenn.FileTypeFile
	}
	return fe
}
