package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/disk"
	"github.com/wrennhq/wrenn/internal/layout"
)

// The shared store (issue 13): a directory every agent of a fleet mounts
// at the same path (WRENN_SHARED_DIR; NFS in production). With one,
//
//   - snapshot templates are made in and read from <shared>/templates
//     (Layout.Templates), so a template made on one host starts sandboxes
//     on every host of the store;
//   - a pause moves the paused sandbox's files out of its run directory
//     into <shared>/paused/<id> and the agent forgets it; a resume of a
//     sandbox the agent does not hold takes it from there, on whichever
//     host the control plane chose, so that a paused sandbox outlives its
//     host;
//   - disks there never back onto a host's own images: the root disk at
//     the bottom of a shared disk's chain is copied once into
//     <shared>/bases/<sha256>.ext4, keyed by its content (two hosts'
//     separately built images need not be the same bytes), and the disk
//     is rebased onto it (qemu-img rebase -u: the same bytes, another
//     name); a paused sandbox's root disk names its template disk by a
//     path relative to its own directory. Kernels likewise go to
//     <shared>/kernels.
//
// Everything is written to a hidden temporary name beside its place and
// renamed into it once whole, so nothing half-written is taken for whole;
// what a crash leaves half-done carries its host's tag (owner) and is
// cleaned up by that host's next agent (cleanShared). Files are moved by
// rename or hard link where the store and the data dir share a file
// system, and copied where they do not.

// sharedStore is the agent's view of the store.
type sharedStore struct {
	dir   layout.Shared
	id    string // the store's identity (store-id)
	owner string // this host's tag on temporary names
	log   *slog.Logger

	mu   sync.Mutex
	sums map[string]fileSum // content hashes of local files, by path
}

type fileSum struct {
	size  int64
	mtime time.Time
	sum   string
}

// openShared opens the store at dir, making its directories and identity
// the first time, for the host hostID.
func openShared(dir layout.Shared, hostID string, log *slog.Logger) (*sharedStore, error) {
	for _, d := range []string{dir.Templates(), dir.Paused(), dir.Bases(), dir.Kernels()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("shared store: %w", err)
		}
	}
	id, err := storeID(dir)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256([]byte(hostID))
	return &sharedStore{dir: dir, id: id, owner: hex.EncodeToString(h[:6]), log: log, sums: map[string]fileSum{}}, nil
}

// storeID reads the store's identity, writing a new one if there is none
// yet: of agents starting at once, the first link wins.
func storeID(dir layout.Shared) (string, error) {
	read := func() (string, error) {
		b, err := os.ReadFile(dir.StoreID())
		if err != nil {
			return "", err
		}
		id := strings.TrimSpace(string(b))
		if id == "" {
			return "", fmt.Errorf("shared store: %s is empty", dir.StoreID())
		}
		return id, nil
	}
	id, err := read()
	if !errors.Is(err, fs.ErrNotExist) {
		return id, err
	}
	tmp := dir.StoreID() + ".tmp-" + rand.Text()
	if err := os.WriteFile(tmp, []byte("store-"+strings.ToLower(rand.Text())+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("shared store: %w", err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, dir.StoreID()); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("shared store: %w", err)
	}
	return read()
}

// holds reports whether path is in the store.
func (s *sharedStore) holds(path string) bool {
	return strings.HasPrefix(filepath.Clean(path), filepath.Clean(s.dir.Path())+"/")
}

// shareFile returns the copy of the local file src in the store directory
// dir, named by its content's hash with ext, copying it there once.
func (s *sharedStore) shareFile(src, dir, ext string) (string, error) {
	if s.holds(src) {
		return src, nil
	}
	sum, err := s.sum(src)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(dir, sum+ext)
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	tmp := filepath.Join(dir, "."+sum+ext+".tmp-"+s.owner+"-"+rand.Text())
	if err := copyFile(src, tmp); err != nil {
		return "", fmt.Errorf("share %s: %w", filepath.Base(src), err)
	}
	if err := os.Chmod(tmp, 0o644); err == nil {
		err = syncPath(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("share %s: %w", filepath.Base(src), err)
	}
	logErr(s.log, "flush shared dir", syncPath(dir))
	return dst, nil
}

// sum is the content hash of a local file, computed once per version of
// it.
func (s *sharedStore) sum(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	c, ok := s.sums[path]
	s.mu.Unlock()
	if ok && c.size == fi.Size() && c.mtime.Equal(fi.ModTime()) {
		return c.sum, nil
	}
	sum, err := sparseSum(path)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	s.sums[path] = fileSum{size: fi.Size(), mtime: fi.ModTime(), sum: sum}
	s.mu.Unlock()
	return sum, nil
}

// Whence values of lseek(2) for sparse files.
const (
	seekData = 3
	seekHole = 4
)

// sparseSum hashes a file's content as its length and the offset, length
// and bytes of each of its data extents, skipping holes: root disks are
// mostly holes. Two files of the same content hash the same unless one
// stores zeros the other leaves as a hole, which costs a copy, never a
// mix-up.
func sparseSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	var num [8]byte
	put := func(v int64) {
		binary.BigEndian.PutUint64(num[:], uint64(v))
		h.Write(num[:])
	}
	put(fi.Size())
	for off := int64(0); off < fi.Size(); {
		start, err := f.Seek(off, seekData)
		if errors.Is(err, syscall.ENXIO) {
			break // holes to the end
		}
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", path, err)
		}
		end, err := f.Seek(start, seekHole)
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", path, err)
		}
		put(start)
		put(end - start)
		if _, err := io.Copy(h, io.NewSectionReader(f, start, end-start)); err != nil {
			return "", fmt.Errorf("hash %s: %w", path, err)
		}
		off = end
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyFile copies src to dst, keeping holes.
func copyFile(src, dst string) error {
	out, err := exec.Command("cp", "--sparse=always", "--reflink=auto", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copy %s: %w: %s", filepath.Base(src), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// placeFile makes dst the same file as src: a hard link, or a copy where
// the two are on different file systems.
func placeFile(src, dst string) error {
	err := os.Link(src, dst)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		return err
	}
	return copyFile(src, dst)
}

// rebase makes the qcow2 image img name backing (of format backingFormat)
// as its backing file without changing its content: backing must hold
// the same bytes as the one it replaces.
func rebase(ctx context.Context, img, backing, backingFormat string) error {
	cmd := exec.CommandContext(ctx, "qemu-img", "rebase", "-u", "-f", "qcow2", "-F", backingFormat, "-b", backing, img)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("rebase %s: %w: %s", filepath.Base(img), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// shareBacking makes the qcow2 image img, which is not linked anywhere
// else, back onto the store's copy of the raw root disk it backs onto.
func (s *sharedStore) shareBacking(ctx context.Context, img string) error {
	b, err := disk.Backing(img)
	if err != nil {
		return err
	}
	if b == "" || s.holds(b) || !filepath.IsAbs(b) {
		return nil
	}
	shared, err := s.shareFile(b, s.dir.Bases(), ".ext4")
	if err != nil {
		return err
	}
	return rebase(ctx, img, shared, "raw")
}

// chainBottom is the raw image at the bottom of the qcow2 image top's
// backing chain.
func chainBottom(top string) (string, error) {
	img := top
	for range 16 {
		b, err := disk.Backing(img)
		if err != nil {
			if img != top {
				return img, nil // not a qcow2 image: raw
			}
			return "", err
		}
		if b == "" {
			return "", fmt.Errorf("%s backs onto no raw image", top)
		}
		if !filepath.IsAbs(b) {
			b = filepath.Join(filepath.Dir(img), b)
		}
		img = b
	}
	return "", fmt.Errorf("disk chain of %s is too deep", top)
}

// exportPaused moves the paused sandbox of run directory dir, recorded as
// rec, into the store and removes dir. On failure dir is as it was (but
// for its root disk naming its template disk relatively, which is the
// same) and nothing is left in the store.
func (s *sharedStore) exportPaused(ctx context.Context, dir layout.SandboxDir, rec record) (err error) {
	final := s.dir.PausedSandbox(rec.ID)
	tmp, err := os.MkdirTemp(s.dir.Paused(), "."+rec.ID+".tmp-"+s.owner+"-")
	if err != nil {
		return fmt.Errorf("export paused sandbox: %w", err)
	}
	defer func() {
		if err != nil {
			logErr(s.log, "remove unfinished export", os.RemoveAll(tmp))
			err = fmt.Errorf("export paused sandbox: %w", err)
		}
	}()
	dst := layout.SandboxDir(tmp)
	if err := os.Chmod(tmp, 0o700); err != nil {
		return err
	}
	// The template disk the root disk is over: kept as it is where it is
	// over the store's root disk already (the template is the store's),
	// else copied and rebased, since its other links must not change.
	if _, err := os.Stat(dir.TemplateDisk()); err == nil {
		tb, err := disk.Backing(dir.TemplateDisk())
		if err != nil {
			return err
		}
		if s.holds(tb) {
			err = placeFile(dir.TemplateDisk(), dst.TemplateDisk())
		} else if err = copyFile(dir.TemplateDisk(), dst.TemplateDisk()); err == nil {
			err = s.shareBacking(ctx, dst.TemplateDisk())
		}
		if err != nil {
			return err
		}
		// The root disk is the sandbox's alone: rebased where it is.
		if err := rebase(ctx, dir.RootDisk(), filepath.Base(dir.TemplateDisk()), "qcow2"); err != nil {
			return err
		}
	} else if err := s.shareBacking(ctx, dir.RootDisk()); err != nil {
		return err
	}
	if err := placeFile(dir.RootDisk(), dst.RootDisk()); err != nil {
		return err
	}
	for _, f := range []struct {
		src, dst string
		optional bool
	}{
		{dir.Memory(), dst.Memory(), false},
		{dir.VMState(), dst.VMState(), false},
		{dir.Metrics(), dst.Metrics(), true},
	} {
		if err := placeFile(f.src, f.dst); err != nil && !(f.optional && errors.Is(err, fs.ErrNotExist)) {
			return err
		}
	}
	if rec.Kernel != "" {
		if rec.Kernel, err = s.shareFile(rec.Kernel, s.dir.Kernels(), ".vmlinux"); err != nil {
			return err
		}
	}
	if err := writeRecord(dst, rec); err != nil {
		return err
	}
	for _, p := range []string{dst.RootDisk(), dst.TemplateDisk(), dst.Memory(), dst.VMState(), dst.Metrics(), dst.State(), tmp} {
		if err := syncPath(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := replaceDir(tmp, final.Path()); err != nil {
		return err
	}
	logErr(s.log, "flush shared dir", syncPath(s.dir.Paused()))
	logErr(s.log, "remove run dir of exported sandbox", removeRunDir(dir))
	return nil
}

// importPaused takes the paused sandbox id from the store into the run
// directory dir (which must not exist): ENotFound if the store does not
// hold it. Of agents taking it at once, one does: the first step renames
// it to a name of this host's.
func (s *sharedStore) importPaused(id string, dir layout.SandboxDir) (err error) {
	src := s.dir.PausedSandbox(id)
	claimed := filepath.Join(s.dir.Paused(), "."+id+".taken-"+s.owner+"-"+rand.Text())
	if err := os.Rename(src.Path(), claimed); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return wrenn.Errorf(wrenn.ENotFound, "sandbox not found on this host or in its shared store")
		}
		return fmt.Errorf("take paused sandbox: %w", err)
	}
	defer func() {
		if err != nil {
			logErr(s.log, "give back a paused sandbox", os.Rename(claimed, src.Path()))
			err = fmt.Errorf("take paused sandbox: %w", err)
		}
	}()
	if err := checkEntries(claimed); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir.Path()), 0o700); err != nil {
		return err
	}
	err = os.Rename(claimed, dir.Path())
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EXDEV) {
		return err
	}
	// Another file system: copied into a hidden directory beside dir,
	// which becomes dir once whole (adopt removes leftovers).
	tmp, err := os.MkdirTemp(filepath.Dir(dir.Path()), "."+id+".in-")
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(claimed)
	if err == nil {
		for _, e := range entries {
			if err = copyFile(filepath.Join(claimed, e.Name()), filepath.Join(tmp, e.Name())); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = os.Rename(tmp, dir.Path())
	}
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	logErr(s.log, "remove taken paused sandbox from the store", os.RemoveAll(claimed))
	return nil
}

// pausedIDs lists the paused sandboxes the store holds.
func (s *sharedStore) pausedIDs() ([]string, error) {
	entries, err := os.ReadDir(s.dir.Paused())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && wrenn.ValidID(wrenn.PrefixSandbox, e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// removePaused removes the paused sandbox id from the store, if there.
func (s *sharedStore) removePaused(id string) error {
	gone := filepath.Join(s.dir.Paused(), "."+id+".deleted-"+s.owner+"-"+rand.Text())
	if err := os.Rename(s.dir.PausedSandbox(id).Path(), gone); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return os.RemoveAll(gone)
}

// cleanShared puts right what this host's earlier agent left half-done
// in the store: an export not finished goes (its run directory still
// holds the sandbox); a sandbox taken but not in a run directory here
// whole goes back; a deletion is finished. Hidden files of other hosts'
// are theirs.
func (s *sharedStore) cleanShared(l layout.Layout) {
	dirs := []string{s.dir.Paused(), s.dir.Bases(), s.dir.Kernels()}
	for _, d := range dirs {
		left, err := filepath.Glob(filepath.Join(d, ".*"))
		logErr(s.log, "list what an earlier agent left in the shared store", err)
		for _, p := range left {
			name := filepath.Base(p)
			if !strings.Contains(name, "-"+s.owner+"-") {
				continue
			}
			if i := strings.Index(name, ".taken-"); i > 1 {
				id := name[1:i]
				if _, err := readRecord(l.Sandbox(id)); err != nil {
					s.log.Warn("giving back a paused sandbox an earlier agent took but did not resume", slog.String(attrSandboxID, id))
					logErr(s.log, "give back paused sandbox", os.Rename(p, s.dir.PausedSandbox(id).Path()))
					continue
				}
			}
			s.log.Info("removing what an earlier agent left in the shared store", slog.String("path", p))
			logErr(s.log, "remove leftover", os.RemoveAll(p))
		}
	}
}

// pausedFiles are the files a paused sandbox in the store may have.
var pausedFiles = map[string]bool{"rootfs.qcow2": true, "template.qcow2": true, "mem": true, "vmstate": true,
	"state.json": true, "metrics.json": true}

// checkEntries checks that the directory dir taken from the store holds
// regular files a paused sandbox has and nothing else: the store is
// shared, and what another host left there must not make this one read
// its own files (a symbolic link) into a guest.
func checkEntries(dir string) error {
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !pausedFiles[e.Name()] {
			return fmt.Errorf("%s holds %s, which a paused sandbox does not", dir, e.Name())
		}
	}
	return nil
}

// checkShared checks what a sandbox from the store will open: its disk
// chain from top goes through the image beside it named relatively
// (template.qcow2) or straight to a base root disk in the store, all
// regular files; and its kernel is the store's. QEMU opens the chain,
// so a disk naming one of this host's files must not be started.
func (s *sharedStore) checkShared(top, kernel string) error {
	inDir := func(path, dir string) bool {
		return filepath.Dir(filepath.Clean(path)) == filepath.Clean(dir)
	}
	regular := func(path string) error {
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
		return nil
	}
	if !inDir(kernel, s.dir.Kernels()) {
		return fmt.Errorf("the kernel %s is not the shared store's", kernel)
	}
	if err := regular(kernel); err != nil {
		return err
	}
	img := top
	for range 3 {
		if err := regular(img); err != nil {
			return err
		}
		b, err := disk.Backing(img)
		if err != nil {
			return err
		}
		switch {
		case b == "template.qcow2" && img == top:
			img = filepath.Join(filepath.Dir(top), b)
		case filepath.IsAbs(b) && inDir(b, s.dir.Bases()):
			return regular(b)
		default:
			return fmt.Errorf("%s is over %q, which is not in the shared store", img, b)
		}
	}
	return fmt.Errorf("the disk chain of %s is too deep", top)
}
