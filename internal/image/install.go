package image

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Names of work directories. Anything carrying these markers is a
// leftover once no build holds the lock, and the next build removes it.
const (
	tmpMarker = ".tmp-"
	oldMarker = ".old-"
)

// tempBeside creates an empty directory next to target, on the same file
// system, so that the finished result can be renamed onto target.
func tempBeside(target string) (string, error) {
	parent, base := filepath.Split(target)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", parent, err)
	}
	dir, err := os.MkdirTemp(parent, "."+base+tmpMarker)
	if err != nil {
		return "", fmt.Errorf("create temp dir: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("create temp dir: %w", err)
	}
	return dir, nil
}

// installDir moves the finished directory tmp onto target, replacing what
// target held. A reader sees either the old directory or the new one;
// a crash between the two renames leaves the old one beside target, and
// cleanStale puts it back.
func installDir(tmp, target string) error {
	if err := syncDir(tmp); err != nil {
		return fmt.Errorf("install %s: %w", target, err)
	}
	parent, base := filepath.Split(target)
	err := os.Rename(tmp, target)
	if err == nil {
		return syncDir(parent)
	}
	if !errors.Is(err, syscall.EEXIST) && !errors.Is(err, syscall.ENOTEMPTY) {
		return fmt.Errorf("install %s: %w", target, err)
	}
	old, err := os.MkdirTemp(parent, "."+base+oldMarker)
	if err != nil {
		return fmt.Errorf("install %s: %w", target, err)
	}
	// Rename onto the empty directory just made: rename(2) replaces an
	// empty directory (os.Rename refuses to), and MkdirTemp gave a name
	// nobody else uses.
	if err := syscall.Rename(target, old); err != nil {
		os.Remove(old)
		return fmt.Errorf("install %s: move old aside: %w", target, err)
	}
	if err := os.Rename(tmp, target); err != nil {
		if rerr := os.Rename(old, target); rerr != nil {
			return fmt.Errorf("install %s: %w (and restoring the old one: %v)", target, err, rerr)
		}
		return fmt.Errorf("install %s: %w", target, err)
	}
	if err := syncDir(parent); err != nil {
		return fmt.Errorf("install %s: %w", target, err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("install %s: remove old: %w", target, err)
	}
	return nil
}

// writeFileAtomic replaces path with data through a temp file and rename.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+tmpMarker)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// syncFile flushes one file to disk.
func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// cleanStale removes leftovers of interrupted builds in dir: temp
// directories and files, and old directories that a finished install did
// not get to remove. An old directory whose target is missing (a crash
// between installDir's renames) is put back instead. The caller holds the
// build lock, so no live build owns any of them.
func cleanStale(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clean %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		p := filepath.Join(dir, name)
		switch {
		case strings.Contains(name, tmpMarker):
			errs = append(errs, removeAll(p))
		case strings.HasPrefix(name, ".") && strings.Contains(name, oldMarker):
			target := filepath.Join(dir, name[1:strings.Index(name, oldMarker)])
			if _, err := os.Lstat(target); errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, os.Rename(p, target))
				continue
			}
			errs = append(errs, removeAll(p))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean %s: %w", dir, err)
	}
	return nil
}

// removeAll removes dir after detaching anything mounted beneath it: a
// killed mmdebstrap can leave /proc or /dev mounted in its chroot, and
// removing through a bind mount would delete the host's files.
func removeAll(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("unmount %s: %w", m, err)
		}
	}
	return os.RemoveAll(dir)
}

// mountsUnder returns the mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	f, err := os.Open("/proc/self/mountinfo")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == abs || strings.HasPrefix(mp, abs+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + (c - '0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
