package netslot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// threadNetns names the calling thread's own network namespace.
const threadNetns = "/proc/thread-self/ns/net"

// errExists reports that a slot's namespace or host veth is already there:
// someone else's, or a leftover for Sweep.
var errExists = errors.New("already exists")

// ensureNetnsDir makes /run/netns a shared mount point, as `ip netns add`
// does, so that unmounting a namespace here also unmounts the copies other
// mount namespaces took, and the namespace can actually go away.
func ensureNetnsDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet
		if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind mount %s: %w", dir, err)
		}
		err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("make %s shared: %w", dir, err)
	}
	return nil
}

// createNamespaceFile makes the empty file a new namespace is bind-mounted
// on; it fails with errExists if the name is taken.
func createNamespaceFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("namespace %s: %w", filepath.Base(path), errExists)
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// enterNewNamespace moves the calling (locked) thread into a new network
// namespace and pins it at path, which createNamespaceFile made.
func enterNewNamespace(path string) error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	if err := unix.Mount(threadNetns, path, "none", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount %s: %w", path, err)
	}
	return nil
}

// deleteNamespace unpins a namespace; the kernel frees it once nothing else
// (a TAP descriptor, a process) holds it. A missing namespace is no error.
func deleteNamespace(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// isNamespace reports whether path is a pinned network namespace.
func isNamespace(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return err
	}
	if st.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("%s is not a namespace", path)
	}
	return nil
}

// doInNamespace runs fn on a thread inside the namespace pinned at path.
func doInNamespace(path string, fn func() error) error {
	return onNamespaceThread(func() error {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open namespace: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter namespace %s: %w", path, err)
		}
		return nil
	}, func(int) error { return fn() })
}

// onNamespaceThread runs enter and then fn on a fresh goroutine locked to its
// OS thread, then moves the thread back to the namespace it started in. fn
// gets a descriptor of that original namespace (to place a veth peer there,
// say). If the thread cannot be moved back it is never unlocked, so the Go
// runtime throws it away when the goroutine ends instead of reusing a thread
// that sits in the wrong namespace.
func onNamespaceThread(enter func() error, fn func(home int) error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open(threadNetns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open thread namespace: %w", err)
			return
		}
		defer unix.Close(home)
		err = enter()
		if err == nil {
			err = fn(home)
		}
		if rerr := unix.Setns(home, unix.CLONE_NEWNET); rerr != nil {
			errc <- errors.Join(err, fmt.Errorf("restore thread namespace: %w", rerr))
			return // still locked: the runtime ends this thread
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// writeSysctl sets a sysctl (dotted key) in the calling thread's namespace:
// /proc/sys/net resolves against the namespace of the thread opening it.
func writeSysctl(key, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("sysctl %s: %w", key, err)
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

func readSysctl(key string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
	if err != nil {
		return "", fmt.Errorf("sysctl %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// haveIPv6 reports whether the kernel has IPv6 at all (its sysctls exist).
func haveIPv6() bool {
	_, err := os.Stat("/proc/sys/net/ipv6")
	return err == nil
}
