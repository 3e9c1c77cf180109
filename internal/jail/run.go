package jail

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// run is the jailer, in the mount namespace Command gave it: it joins the
// cgroups, builds the root, pivots into it, drops every privilege and
// execs the program. Capabilities, the bounding set and no_new_privs are
// per thread, and exec keeps those of the thread that calls it: all of it
// happens on one locked thread.
func run(s Spec) error {
	runtime.LockOSThread()
	last := lastCap() // /proc is not in the jail
	for _, procs := range s.Cgroups {
		// "0" is the writer itself (its PID here is 1 of its namespace).
		if err := os.WriteFile(procs, []byte("0"), 0); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	if err := buildRoot(s); err != nil {
		return err
	}
	if err := pivot(s.Root); err != nil {
		return err
	}
	if err := dropPrivileges(s, last); err != nil {
		return err
	}
	env := s.Env
	if env == nil {
		env = []string{}
	}
	return fmt.Errorf("exec %s: %w", s.Argv[0], unix.Exec(s.Argv[0], s.Argv, env))
}

// buildRoot mounts a tmpfs at s.Root and binds into it, at their own
// paths, what the program may see; then makes the tmpfs read-only.
func buildRoot(s Spec) error {
	// Nothing mounted here may propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := os.MkdirAll(s.Root, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", s.Root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=1m,nr_inodes=4096"); err != nil {
		return fmt.Errorf("mount jail root: %w", err)
	}
	type bind struct {
		path  string
		flags uintptr // of the read-only or writable remount
	}
	var binds []bind
	for _, p := range s.System {
		binds = append(binds, bind{p, unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV})
	}
	for _, p := range s.ReadOnly {
		binds = append(binds, bind{p, unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC})
	}
	for _, p := range s.Writable {
		binds = append(binds, bind{p, unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC})
	}
	for _, p := range s.Devices {
		binds = append(binds, bind{p, unix.MS_NOSUID | unix.MS_NOEXEC})
	}
	system := len(s.System)
	for i, b := range binds {
		err := bindAt(s.Root, b.path, b.flags, i < system)
		if errors.Is(err, fs.ErrNotExist) && i < system {
			continue // a system directory this host lacks
		}
		if err != nil {
			return fmt.Errorf("bind %s: %w", b.path, err)
		}
	}
	if err := unix.Mount("", s.Root, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("make jail root read-only: %w", err)
	}
	return nil
}

// bindAt shows path at root+path with the mount flags flags. A symbolic
// link in system is recreated rather than followed.
func bindAt(root, path string, flags uintptr, system bool) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%q is not absolute", path)
	}
	target := filepath.Join(root, path)
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	if system && fi.Mode()&fs.ModeSymlink != 0 {
		dest, err := os.Readlink(path)
		if err != nil {
			return err
		}
		return os.Symlink(dest, target)
	}
	if fi, err = os.Stat(path); err != nil {
		return err
	}
	if fi.IsDir() {
		err = os.Mkdir(target, 0o755)
	} else {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
			err = f.Close()
		}
	}
	if err != nil {
		return err
	}
	if err := unix.Mount(path, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	return unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|flags, "")
}

// pivot makes root the root of the mount namespace and lets go of the
// host's file system entirely.
func pivot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on the new one; detaching
	// it leaves only the new.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

// dropPrivileges empties the capability bounding and ambient sets, takes
// on s's user and groups (which clears the permitted and effective sets),
// clears the inheritable set and sets no_new_privs.
func dropPrivileges(s Spec, lastCap int) error {
	for c := 0; c <= lastCap; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	groups := s.Groups
	if groups == nil {
		groups = []int{}
	}
	// The Go runtime applies these to every thread of the process.
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(s.GID, s.GID, s.GID); err != nil {
		return fmt.Errorf("setresgid: %w", err)
	}
	if err := syscall.Setresuid(s.UID, s.UID, s.UID); err != nil {
		return fmt.Errorf("setresuid: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clear capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	return nil
}

// lastCap is the highest capability the kernel knows.
func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 63 // drop them all; unknown ones answer EINVAL
	}
	n, err := strconv.Atoi(string(b[:len(b)-1]))
	if err != nil {
		return 63
	}
	return n
}
