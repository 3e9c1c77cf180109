package netslot

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// isolatedEnv tells the re-executed test binary it runs in its own network
// and mount namespaces ("1"), or why it could not ("skip: …").
const isolatedEnv = "WRENN_NETSLOT_TEST_ISOLATED"

// TestMain runs the tests, as root, in a re-executed copy of this binary with
// its own network namespace (which plays "the host": its own links, routes,
// nftables, conntrack and sysctls) and its own mount namespace with a
// private /run/netns. Nothing the tests do reaches the machine's real
// network, no test packet can leave the machine, and when the process ends,
// however it ends, the kernel frees every namespace and interface it made.
func TestMain(m *testing.M) {
	switch os.Getenv(isolatedEnv) {
	case "":
		if os.Geteuid() == 0 {
			if code, err := runIsolated(); err == nil {
				os.Exit(code)
			} else {
				os.Setenv(isolatedEnv, "skip: cannot create an isolated network namespace: "+err.Error())
			}
		}
	case "1":
		if err := finishIsolation(); err != nil {
			fmt.Fprintln(os.Stderr, "netslot tests: isolate:", err)
			os.Exit(2)
		}
	}
	os.Exit(m.Run())
}

func runIsolated() (int, error) {
	runtime.LockOSThread() // Pdeathsig follows the thread that started the child
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), isolatedEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	err := cmd.Run()
	if exit, ok := errors.AsType[*exec.ExitError](err); ok {
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}

// finishIsolation keeps mounts from propagating back to the real host, gives
// the tests an empty /run/netns of their own, and brings up loopback.
func finishIsolation() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", netnsDir, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", netnsDir, err)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(lo)
}

// requireIsolatedRoot skips tests that need root, /dev/net/tun and the
// isolated namespaces TestMain sets up.
func requireIsolatedRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("netslot: needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to build namespaces; run the tests as root")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		tb.Skipf("netslot: needs /dev/net/tun for TAP devices: %v", err)
	}
	if v := os.Getenv(isolatedEnv); v != "1" {
		tb.Skipf("netslot: %s", strings.TrimPrefix(v, "skip: "))
	}
}
