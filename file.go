package wrenn

import (
	"context"
	"time"
)

// Kinds of FileEntry.
const (
	FileTypeFile      = "file" // anything that is neither a directory nor a symlink
	FileTypeDirectory = "directory"
	FileTypeSymlink   = "symlink"
)

// FileEntry describes one file, directory or symbolic link in a sandbox,
// as listing, stat, mkdir and move report it. A symbolic link is described
// itself, not its target.
type FileEntry struct {
	Name string // the last element of Path
	Path string // absolute and clean
	Type string // a FileType constant
	Size int64
	// Mode is the permission bits with setuid, setgid and sticky
	// (mode & 07777); Permissions is the same as ls -l shows it,
	// type letter first ("-rwxr-xr-x").
	Mode        uint32
	Permissions string
	// Owner and Group are names where the guest knows them, else the
	// numeric ids.
	Owner, Group  string
	ModifiedAt    time.Time
	SymlinkTarget string // the link's target; empty unless Type is FileTypeSymlink
}

// Kinds of FileEvent.
const (
	FileCreated = "create"
	FileWritten = "write"
	FileRemoved = "remove"
	FileRenamed = "rename" // Path is the old name; the new one has its own create
	FileChmod   = "chmod"
)

// FileEvent is one change a watch saw in a sandbox's file tree.
type FileEvent struct {
	Op   string // a File... kind constant above
	Path string // absolute
}

// FileWatch is a watch on a directory of a running sandbox.
type FileWatch interface {
	// Recv returns the next change. It fails once the watch ends: the
	// sandbox stopped, or the guest could not keep up (an ETooLarge error).
	Recv() (FileEvent, error)
	Close() error
}

// Watcher watches a sandbox's file tree. It is an optional capability of
// an Agent, found by type assertion.
type Watcher interface {
	// WatchDir watches the directory path, and if recursive everything
	// below it, directories made later included. It returns once the
	// watch is in place: every change after that is seen. A missing path
	// is an ENotFound error, a file EInvalid.
	WatchDir(ctx context.Context, id, path string, recursive bool) (FileWatch, error)
}
