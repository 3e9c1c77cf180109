package wrenn

import "time"

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
