// Package jail starts a program the way Firecracker's jailer starts its
// VMM: in a mount namespace of its own whose root holds only what the
// program was given (system directories and images read-only, a few files
// writable), in the cgroups it was given, as an unprivileged user, with no
// capabilities and no_new_privs set. The VMM drivers are its users.
//
// What must happen between fork and exec (mounts, pivot_root, dropping
// the capability bounding set) cannot be said with os/exec's
// SysProcAttr, so Command re-executes the running binary as a small
// jailer: every binary that starts jailed programs must call Main first
// thing in main (and in TestMain of tests that do).
package jail

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// marker is argv[0] of the re-executed jailer: Main acts only on it.
const marker = "wrenn-jail"

// Spec says how to jail one program.
type Spec struct {
	// Argv is the program and its arguments; Argv[0] is an absolute path
	// inside the jail (system directories appear at their own paths).
	Argv []string
	Env  []string
	// UID and GID are the user and group it runs as: neither may be 0.
	// Groups are its supplementary groups.
	UID, GID int
	Groups   []int
	// Root is the directory the jail's root file system (a small tmpfs)
	// is mounted on, in the jail's mount namespace only: any directory
	// that nothing in the jail is bound from.
	Root string
	// System are directories and files shown read-only at their own
	// paths (shared libraries, the program itself); a symbolic link is
	// recreated as one, and a path that does not exist is skipped.
	System []string
	// ReadOnly and Writable are files shown at their own paths, read-only
	// or writable. Devices are device nodes shown at their own paths.
	ReadOnly, Writable, Devices []string
	// Cgroups are cgroup.procs files the program is moved into before it
	// runs, so everything it starts is accounted from its first step.
	Cgroups []string
}

// Command returns a command that runs s.Argv jailed as s says, in a
// session of its own (it must outlive its starter). Its ExtraFiles, Stdout
// and Stderr are passed on to the program as they are.
func Command(s Spec) (*exec.Cmd, error) {
	if len(s.Argv) == 0 || !filepath.IsAbs(s.Argv[0]) {
		return nil, fmt.Errorf("jail: program must be an absolute path, got %q", s.Argv)
	}
	if s.UID <= 0 || s.GID <= 0 {
		return nil, fmt.Errorf("jail: uid %d, gid %d: must not be root", s.UID, s.GID)
	}
	if !filepath.IsAbs(s.Root) {
		return nil, fmt.Errorf("jail: root %q is not absolute", s.Root)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{Path: "/proc/self/exe", Args: []string{marker, string(b)}, Env: []string{}}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setsid: true,
		// The mount namespace is the jail's file system view. In a PID
		// namespace of its own it can signal no other process; in an empty
		// network namespace it can reach no address (the host's services
		// on loopback included): a VMM gets its TAP and sockets as files.
		// IPC and UTS namespaces cost nothing. All of them together take
		// well under a millisecond to make.
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET |
			syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS,
	}
	return cmd, nil
}

// Main runs the jailer if this process is one (see Command) and never
// returns then; otherwise it returns at once.
func Main() {
	if len(os.Args) != 2 || os.Args[0] != marker {
		return
	}
	var s Spec
	err := json.Unmarshal([]byte(os.Args[1]), &s)
	if err == nil {
		err = run(s) // returns only on failure
	}
	fmt.Fprintf(os.Stderr, "jail: %v\n", err)
	os.Exit(127)
}

// SystemDirs are the directories a dynamically linked program of the
// host's usually needs, for Spec.System.
var SystemDirs = []string{"/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/etc/ld.so.cache"}

// within reports whether path is dir or lies under it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}
