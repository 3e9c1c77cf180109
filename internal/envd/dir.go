package envd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/wrennhq/wrenn"
)

// maxListEntries bounds a listing, on both sides: the host holds it whole.
const maxListEntries = 100_000

// listBatchBytes bounds how much of a listing one message carries, as
// wireSize counts it: well under the frame limit whatever the names.
const listBatchBytes = 160 << 10

// entry is a wrenn.FileEntry on the wire.
type entry struct {
	Name          string `json:"name"`
	Path          string `json:"path"`
	Type          string `json:"type"`
	Size          int64  `json:"size"`
	Mode          uint32 `json:"mode"`
	Permissions   string `json:"permissions"`
	Owner         string `json:"owner"`
	Group         string `json:"group"`
	ModifiedNS    int64  `json:"modified_ns"`
	SymlinkTarget string `json:"symlink_target,omitempty"`
}

// wireSize is at least how many bytes e takes encoded: JSON may spend
// six bytes on one of a name (\u001f), and the rest is under 200.
func (e *entry) wireSize() int {
	return 6*(len(e.Name)+len(e.Path)+len(e.SymlinkTarget)+len(e.Owner)+len(e.Group)) + 200
}

// absPath is the guest's path rule: absolute, then cleaned.
func absPath(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", wrenn.Errorf(wrenn.EInvalid, "path must be absolute")
	}
	return filepath.Clean(p), nil
}

// absent says whether err is a path that does not exist.
func absent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// listDir sends the directory path's entries depth levels deep in
// batches, then ok; or an error, possibly after some batches.
func (s *server) listDir(ctx context.Context, p *peer, path string, depth int) {
	l := lister{names: newNameCache(), send: func(b []byte) error { return writeFrame(p.st, frameJSON, b) }}
	err := l.list(path, depth)
	if err == nil {
		err = l.flush()
	}
	if err != nil {
		s.log.DebugContext(ctx, "list", slog.String(attrPath, path), slog.Any(attrError, err))
	}
	s.answer(ctx, p, err)
}

type lister struct {
	names *nameCache
	send  func(payload []byte) error // sends a JSON frame
	buf   []byte
	batch []entry
	bytes int
	total int
}

func (l *lister) list(path string, depth int) error {
	path, err := absPath(path)
	if err != nil {
		return err
	}
	if depth < 0 {
		return wrenn.Errorf(wrenn.EInvalid, "depth must not be negative")
	}
	fi, err := os.Stat(path)
	switch {
	case absent(err):
		return wrenn.Errorf(wrenn.ENotFound, "%s not found", path)
	case err != nil:
		return refusal(fmt.Errorf("stat: %w", err), wrenn.ENotFound, "cannot list "+path)
	case !fi.IsDir():
		return wrenn.Errorf(wrenn.EInvalid, "%s is not a directory", path)
	}
	des, err := os.ReadDir(path)
	if err != nil {
		return refusal(fmt.Errorf("read directory: %w", err), wrenn.ENotFound, "cannot list "+path)
	}
	return l.walk(path, des, max(depth, 1))
}

// walk adds the entries of dir, descending into subdirectories (not
// symbolic links to them) while depth lasts. A subdirectory that vanished
// or cannot be read is listed without its contents.
func (l *lister) walk(dir string, des []fs.DirEntry, depth int) error {
	for _, de := range des {
		p := filepath.Join(dir, de.Name())
		fi, err := de.Info()
		if absent(err) {
			continue
		}
		if err != nil {
			return refusal(fmt.Errorf("stat: %w", err), wrenn.ENotFound, "cannot list "+p)
		}
		if err := l.add(describe(p, fi, l.names)); err != nil {
			return err
		}
		if depth > 1 && fi.IsDir() {
			sub, err := os.ReadDir(p)
			if err != nil {
				continue
			}
			if err := l.walk(p, sub, depth-1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *lister) add(e entry) error {
	if l.total++; l.total > maxListEntries {
		return wrenn.Errorf(wrenn.ETooLarge, "the listing has over %d entries: list a smaller depth or a subdirectory", maxListEntries)
	}
	l.batch = append(l.batch, e)
	if l.bytes += e.wireSize(); l.bytes >= listBatchBytes {
		return l.flush()
	}
	return nil
}

func (l *lister) flush() error {
	if len(l.batch) == 0 {
		return nil
	}
	l.buf = appendBatch(l.buf[:0], l.batch)
	err := l.send(l.buf)
	l.batch, l.bytes = l.batch[:0], 0
	return err
}

// appendBatch encodes the message {type:entries, entries:batch} by hand:
// under emulation encoding/json's reflection was most of a listing's time.
func appendBatch(b []byte, batch []entry) []byte {
	b = append(b, `{"type":"`+msgList+`","entries":[`...)
	for i := range batch {
		e := &batch[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendString(b, e.Name)
		b = append(b, `,"path":`...)
		b = appendString(b, e.Path)
		b = append(b, `,"type":`...)
		b = appendString(b, e.Type)
		b = append(b, `,"size":`...)
		b = strconv.AppendInt(b, e.Size, 10)
		b = append(b, `,"mode":`...)
		b = strconv.AppendUint(b, uint64(e.Mode), 10)
		b = append(b, `,"permissions":`...)
		b = appendString(b, e.Permissions)
		b = append(b, `,"owner":`...)
		b = appendString(b, e.Owner)
		b = append(b, `,"group":`...)
		b = appendString(b, e.Group)
		b = append(b, `,"modified_ns":`...)
		b = strconv.AppendInt(b, e.ModifiedNS, 10)
		if e.SymlinkTarget != "" {
			b = append(b, `,"symlink_target":`...)
			b = appendString(b, e.SymlinkTarget)
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// appendString appends s as a JSON string: printable ASCII as it is,
// anything else through encoding/json (valid UTF-8 kept, invalid bytes
// replaced, control characters escaped).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// answerEntry runs a request that changes or reads one path and answers ok
// with the entry it names (none for remove) or the error.
func (s *server) answerEntry(ctx context.Context, p *peer, req request) {
	var (
		e   *entry
		err error
	)
	switch req.Op {
	case opMkdir:
		e, err = makeDir(req.Path, req.Parents)
	case opRm:
		err = remove(req.Path)
	case opStat:
		e, err = stat(req.Path)
	case opMove:
		e, err = move(req.Path, req.Dest)
	}
	if err != nil {
		s.log.DebugContext(ctx, req.Op, slog.String(attrPath, req.Path), slog.Any(attrError, err))
		s.answer(ctx, p, err)
		return
	}
	if serr := p.send(message{Type: msgOK, Entry: e}); serr != nil {
		s.log.DebugContext(ctx, "reply: host gone", slog.Any(attrError, serr))
	}
}

func stat(path string) (*entry, error) {
	path, err := absPath(path)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(path)
	switch {
	case absent(err):
		return nil, wrenn.Errorf(wrenn.ENotFound, "%s not found", path)
	case err != nil:
		return nil, refusal(fmt.Errorf("stat: %w", err), wrenn.ENotFound, "cannot stat "+path)
	}
	e := describe(path, fi, newNameCache())
	return &e, nil
}

func makeDir(path string, parents bool) (*entry, error) {
	path, err := absPath(path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(path); err == nil {
		return nil, wrenn.Errorf(wrenn.EConflict, "%s already exists", path)
	}
	if parents {
		err = os.MkdirAll(path, 0o755)
	} else {
		err = os.Mkdir(path, 0o755)
	}
	switch {
	case errors.Is(err, fs.ErrExist):
		// Made meanwhile, or a parent is a file (MkdirAll says so).
		if fi, serr := os.Lstat(path); serr == nil && fi.IsDir() {
			return nil, wrenn.Errorf(wrenn.EConflict, "%s already exists", path)
		}
		return nil, wrenn.Errorf(wrenn.EInvalid, "a parent of %s is not a directory", path)
	case errors.Is(err, syscall.ENOTDIR):
		return nil, wrenn.Errorf(wrenn.EInvalid, "a parent of %s is not a directory", path)
	case errors.Is(err, fs.ErrNotExist):
		return nil, wrenn.Errorf(wrenn.ENotFound, "the parent of %s does not exist", path)
	case err != nil:
		return nil, refusal(fmt.Errorf("mkdir: %w", err), wrenn.ENotFound, "cannot create "+path)
	}
	return stat(path)
}

func remove(path string) error {
	path, err := absPath(path)
	if err != nil {
		return err
	}
	if path == "/" {
		return wrenn.Errorf(wrenn.EInvalid, "cannot remove /")
	}
	if _, err := os.Lstat(path); absent(err) {
		return wrenn.Errorf(wrenn.ENotFound, "%s not found", path)
	}
	if err := os.RemoveAll(path); err != nil {
		return refusal(fmt.Errorf("remove: %w", err), wrenn.ENotFound, "cannot remove "+path)
	}
	return nil
}

// move renames src to dst. dst must not exist; a rename can still replace
// a dst made between the check and the rename.
func move(src, dst string) (*entry, error) {
	src, err := absPath(src)
	if err != nil {
		return nil, err
	}
	if dst, err = absPath(dst); err != nil {
		return nil, err
	}
	if src == "/" {
		return nil, wrenn.Errorf(wrenn.EInvalid, "cannot move /")
	}
	if _, err := os.Lstat(src); absent(err) {
		return nil, wrenn.Errorf(wrenn.ENotFound, "%s not found", src)
	}
	if _, err := os.Lstat(dst); err == nil {
		return nil, wrenn.Errorf(wrenn.EConflict, "%s already exists", dst)
	}
	err = os.Rename(src, dst)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, wrenn.Errorf(wrenn.ENotFound, "the parent of %s does not exist", dst)
	case errors.Is(err, syscall.ENOTDIR):
		return nil, wrenn.Errorf(wrenn.EInvalid, "a parent of %s is not a directory", dst)
	case errors.Is(err, syscall.EINVAL):
		return nil, wrenn.Errorf(wrenn.EInvalid, "cannot move %s into itself", src)
	case errors.Is(err, syscall.EXDEV):
		return nil, wrenn.Errorf(wrenn.EInvalid, "cannot move %s to another file system", src)
	case err != nil:
		return nil, refusal(fmt.Errorf("rename: %w", err), wrenn.ENotFound, "cannot move "+src)
	}
	return stat(dst)
}

// describe makes the entry of the file path whose Lstat is fi.
func describe(path string, fi fs.FileInfo, names *nameCache) entry {
	e := entry{
		Name:        fi.Name(),
		Path:        path,
		Type:        wrenn.FileTypeFile,
		Size:        fi.Size(),
		Mode:        unixMode(fi.Mode()),
		Permissions: permissions(fi.Mode()),
		ModifiedNS:  fi.ModTime().UnixNano(),
	}
	if path == "/" {
		e.Name = "/"
	}
	switch {
	case fi.IsDir():
		e.Type = wrenn.FileTypeDirectory
	case fi.Mode()&fs.ModeSymlink != 0:
		e.Type = wrenn.FileTypeSymlink
		e.SymlinkTarget, _ = os.Readlink(path) // gone since: no target to tell
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.Owner, e.Group = names.user(st.Uid), names.group(st.Gid)
	}
	return e
}

// unixMode is m's permission bits with setuid, setgid and sticky as
// chmod(2) takes them.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= syscall.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		u |= syscall.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		u |= syscall.S_ISVTX
	}
	return u
}

// permissions renders m as ls -l does.
func permissions(m fs.FileMode) string {
	b := []byte("----------")
	switch {
	case m.IsDir():
		b[0] = 'd'
	case m&fs.ModeSymlink != 0:
		b[0] = 'l'
	case m&fs.ModeNamedPipe != 0:
		b[0] = 'p'
	case m&fs.ModeSocket != 0:
		b[0] = 's'
	case m&fs.ModeCharDevice != 0:
		b[0] = 'c'
	case m&fs.ModeDevice != 0:
		b[0] = 'b'
	}
	const rwx = "rwxrwxrwx"
	for i := range 9 {
		if m&(1<<(8-i)) != 0 {
			b[i+1] = rwx[i]
		}
	}
	special := func(i int, set bool, c byte) {
		if !set {
			return
		}
		if b[i] == 'x' {
			b[i] = c
		} else {
			b[i] = c - 'a' + 'A'
		}
	}
	special(3, m&fs.ModeSetuid != 0, 's')
	special(6, m&fs.ModeSetgid != 0, 's')
	special(9, m&fs.ModeSticky != 0, 't')
	return string(b)
}

// nameCache remembers user and group names by id for one operation:
// looking one up reads /etc/passwd or /etc/group.
type nameCache struct {
	users, groups map[uint32]string
}

func newNameCache() *nameCache {
	return &nameCache{users: map[uint32]string{}, groups: map[uint32]string{}}
}

func (c *nameCache) user(id uint32) string {
	return cached(c.users, id, func(s string) (string, error) {
		u, err := user.LookupId(s)
		if err != nil {
			return "", err
		}
		return u.Username, nil
	})
}

func (c *nameCache) group(id uint32) string {
	return cached(c.groups, id, func(s string) (string, error) {
		g, err := user.LookupGroupId(s)
		if err != nil {
			return "", err
		}
		return g.Name, nil
	})
}

// cached looks id up once; an id without a name is its number.
func cached(m map[uint32]string, id uint32, lookup func(string) (string, error)) string {
	if name, ok := m[id]; ok {
		return name
	}
	s := strconv.FormatUint(uint64(id), 10)
	name, err := lookup(s)
	if err != nil || name == "" {
		name = s
	}
	m[id] = name
	return name
}
