// Package vmmtest is the conformance suite every vmm.Driver must pass:
// a driver's tests call Run with a constructor and a guest to boot. It
// boots real VMs, so it needs a guest kernel and root disk (Guest finds
// the ones `wrenn image build` made) and, for most drivers, root.
package vmmtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/envd"
	"github.com/wrennhq/wrenn/internal/image"
	"github.com/wrennhq/wrenn/internal/layout"
	"github.com/wrennhq/wrenn/internal/vmm"
)

// Fixture is a bootable guest.
type Fixture struct {
	Kernel string
	RootFS string // raw ext4
}

// Guest returns the minimal base from WRENN_IMAGES_DIR, skipping the test
// (or failing it under WRENN_REQUIRE_VMS=1) when there is none.
func Guest(tb testing.TB) Fixture {
	tb.Helper()
	fail := tb.Skipf
	if os.Getenv("WRENN_REQUIRE_VMS") == "1" {
		fail = tb.Fatalf
	}
	dir := os.Getenv("WRENN_IMAGES_DIR")
	if dir == "" {
		fail("WRENN_IMAGES_DIR is unset: no guest images to boot (scripts/test builds them)")
		return Fixture{}
	}
	bases, err := image.NewBuilder(image.Config{Layout: layout.Layout{ImagesRoot: dir}}).Bases()
	if err != nil || len(bases) == 0 {
		fail("no base template built in %s: %v", dir, err)
		return Fixture{}
	}
	return Fixture{Kernel: bases[0].Kernel, RootFS: bases[0].RootFS}
}

// Run checks driver behaviour every VMM must share. newDriver returns a
// fresh driver, as a new host agent process would make.
func Run(t *testing.T, newDriver func(t *testing.T) vmm.Driver, f Fixture) {
	t.Run("StartBootsAndStopEnds", func(t *testing.T) {
		d := newDriver(t)
		c := config(t, f)
		vm := mustStart(t, d, c)
		waitConsole(t, c, "Linux version", 60*time.Second)
		if err := vm.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		select {
		case <-vm.Done():
		default:
			t.Fatal("Done is open after Stop returned")
		}
		if alive(vm.PID()) {
			t.Errorf("process %d survives Stop", vm.PID())
		}
		if err := vm.Stop(context.Background()); err != nil {
			t.Errorf("second Stop: %v", err)
		}
	})
	t.Run("ExitIsNoticed", func(t *testing.T) {
		d := newDriver(t)
		vm := mustStart(t, d, config(t, f))
		if err := syscall.Kill(vm.PID(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		select {
		case <-vm.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("Done stays open after the VMM was killed")
		}
	})
	t.Run("AdoptAfterRestart", func(t *testing.T) {
		c := config(t, f)
		vm := mustStart(t, newDriver(t), c)
		adopted, err := newDriver(t).Adopt(context.Background(), c, vm.PID())
		if err != nil {
			t.Fatalf("adopt: %v", err)
		}
		if adopted.PID() != vm.PID() {
			t.Errorf("adopted pid %d, started %d", adopted.PID(), vm.PID())
		}
		if err := adopted.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, v := range []vmm.VM{adopted, vm} {
			select {
			case <-v.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("Done stays open after the adopted VM stopped")
			}
		}
	})
	t.Run("AdoptRefusesOtherProcesses", func(t *testing.T) {
		c := config(t, f)
		sleeper := exec.Command("sleep", "30")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() }()
		if _, err := newDriver(t).Adopt(context.Background(), c, sleeper.Process.Pid); err == nil {
			t.Error("adopted a process that is not the VM")
		}
		if _, err := newDriver(t).Adopt(context.Background(), c, 1<<22); err == nil {
			t.Error("adopted a process that does not exist")
		}
	})
	t.Run("SnapshotRestoresMemory", func(t *testing.T) {
		d := newDriver(t)
		c := config(t, f)
		c.MemoryFile, c.MemoryShared = filepath.Join(c.RunDir, "mem"), true
		vm := mustStart(t, d, c)
		g := guest(t, c, vm)
		token := fmt.Sprint(time.Now().UnixNano())
		run(t, g, "echo "+token+" > /run/token") // tmpfs: only in RAM
		g.Close()
		state := filepath.Join(c.RunDir, "state")
		if err := vm.Snapshot(context.Background(), state, ""); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		if err := vm.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(state); err != nil || fi.Size() > 1<<20 {
			t.Fatalf("device state with shared RAM should be small: %v, %v", fi, err)
		}
		// The memory file becomes a template: two clones map it privately
		// and both see the token; what one writes the other does not see.
		var clones []*envd.Client
		var cloneVMs []vmm.VM
		var cloneConfigs []vmm.Config
		for range 2 {
			cc := config(t, f)
			if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", c.RootDisk, cc.RootDisk).CombinedOutput(); err != nil {
				t.Fatalf("clone overlay: %v %s", err, out)
			}
			cc.MemoryFile, cc.MemoryShared, cc.Incoming = c.MemoryFile, false, state
			vm := mustStart(t, newDriver(t), cc)
			clones = append(clones, guest(t, cc, vm))
			cloneVMs, cloneConfigs = append(cloneVMs, vm), append(cloneConfigs, cc)
		}
		for i, g := range clones {
			if out := run(t, g, "cat /run/token"); strings.TrimSpace(out) != token {
				t.Errorf("clone %d: token %q, want %q", i, out, token)
			}
		}
		run(t, clones[0], "echo changed > /run/token")
		if out := run(t, clones[1], "cat /run/token"); strings.TrimSpace(out) != token {
			t.Errorf("a clone saw another's write: %q", out)
		}
		// A clone's snapshot split: its RAM goes to a memory file of its
		// own, which a restore maps shared, lazily, as for any template.
		run(t, clones[1], "echo split > /run/token")
		for i, memory := range []string{"", "split-mem"} {
			clones[i].Close()
			cc := cloneConfigs[i]
			state := filepath.Join(cc.RunDir, "state")
			if memory != "" {
				memory = filepath.Join(cc.RunDir, memory)
			}
			if err := cloneVMs[i].Snapshot(context.Background(), state, memory); err != nil {
				t.Fatalf("snapshot clone %d: %v", i, err)
			}
			if err := cloneVMs[i].Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			want := "changed"
			if memory == "" {
				// The stream holds the RAM: loaded into a shared file.
				cc.MemoryFile, cc.MemoryShared = filepath.Join(cc.RunDir, "own-mem"), true
				cc.Incoming, cc.IncomingHasRAM = state, true
			} else {
				if fi, err := os.Stat(state); err != nil || fi.Size() > 1<<20 {
					t.Fatalf("split device state should be small: %v, %v", fi, err)
				}
				cc.MemoryFile, cc.MemoryShared, cc.Incoming = memory, true, state
				want = "split"
			}
			g := guest(t, cc, mustStart(t, newDriver(t), cc))
			if out := run(t, g, "cat /run/token"); strings.TrimSpace(out) != want {
				t.Errorf("clone %d restored: token %q, want %q", i, out, want)
			}
			g.Close()
		}
	})
	t.Run("FailedSplitSnapshotLeavesGuestRunning", func(t *testing.T) {
		c := config(t, f)
		c.MemoryFile, c.MemoryShared = filepath.Join(c.RunDir, "mem"), true
		vm := mustStart(t, newDriver(t), c)
		g := guest(t, c, vm)
		g.Close()
		state := filepath.Join(c.RunDir, "state")
		if err := vm.Snapshot(context.Background(), state, ""); err != nil {
			t.Fatal(err)
		}
		_ = vm.Stop(context.Background())
		cc := config(t, f)
		if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", c.RootDisk, cc.RootDisk).CombinedOutput(); err != nil {
			t.Fatalf("clone overlay: %v %s", err, out)
		}
		cc.MemoryFile, cc.MemoryShared, cc.Incoming = c.MemoryFile, false, state
		clone := mustStart(t, newDriver(t), cc)
		// The stream cannot be written: the split fails, the guest runs on.
		if err := clone.Snapshot(context.Background(), "/dev/full", filepath.Join(cc.RunDir, "mem")); err == nil {
			t.Fatal("split snapshot into /dev/full succeeded")
		}
		run(t, guest(t, cc, clone), "true")
	})
	t.Run("AdoptRunsGuestASnapshotStopped", func(t *testing.T) {
		c := config(t, f)
		c.MemoryFile, c.MemoryShared = filepath.Join(c.RunDir, "mem"), true
		vm := mustStart(t, newDriver(t), c)
		g := guest(t, c, vm)
		run(t, g, "true")
		g.Close()
		if err := vm.Snapshot(context.Background(), filepath.Join(c.RunDir, "state"), ""); err != nil {
			t.Fatal(err)
		}
		// The agent dies here; a new one adopts the stopped VM.
		adopted, err := newDriver(t).Adopt(context.Background(), c, vm.PID())
		if err != nil {
			t.Fatalf("adopt: %v", err)
		}
		run(t, guest(t, c, adopted), "true")
	})
	t.Run("FailedSnapshotLeavesGuestRunning", func(t *testing.T) {
		c := config(t, f)
		c.MemoryFile, c.MemoryShared = filepath.Join(c.RunDir, "mem"), true
		vm := mustStart(t, newDriver(t), c)
		g := guest(t, c, vm)
		// Writes to /dev/full fail: the migration starts, then fails.
		if err := vm.Snapshot(context.Background(), "/dev/full", ""); err == nil {
			t.Fatal("snapshot into /dev/full succeeded")
		}
		run(t, g, "true")
	})
	t.Run("FailedStartLeavesNothing", func(t *testing.T) {
		c := config(t, f)
		c.Kernel = filepath.Join(t.TempDir(), "no-such-kernel")
		before := vmmProcesses(c.RunDir)
		if vm, err := newDriver(t).Start(context.Background(), c); err == nil {
			_ = vm.Stop(context.Background())
			t.Fatal("started a VM without a kernel")
		}
		if after := vmmProcesses(c.RunDir); after != before {
			t.Errorf("a failed start left %d processes", after-before)
		}
	})
}

// config is a VM of 1 vCPU and 256 MiB booting f from a scratch overlay.
func config(t *testing.T, f Fixture) vmm.Config {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "vmm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	disk := filepath.Join(dir, "root.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", f.RootFS, disk).CombinedOutput(); err != nil {
		t.Fatalf("overlay: %v %s", err, out)
	}
	return vmm.Config{
		ID: filepath.Base(dir), RunDir: dir, Kernel: f.Kernel,
		KernelArgs: "console=ttyS0 reboot=t panic=-1 root=/dev/vda rw rootfstype=ext4 init=/usr/local/bin/envd",
		RootDisk:   disk, RootDiskFormat: "qcow2", VCPUs: 1, MemoryMB: 256,
		AgentSocket: filepath.Join(dir, "envd.sock"), ConsoleLog: filepath.Join(dir, "console.log"),
	}
}

// guest connects to the guest agent of vm and waits until it answers.
func guest(t *testing.T, c vmm.Config, vm vmm.VM) *envd.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		conn, err := net.Dial("unix", c.AgentSocket)
		if err == nil {
			g, err := envd.NewClient(conn, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
				err = g.Ping(pctx)
				pcancel()
				if err == nil {
					t.Cleanup(func() { g.Close() })
					return g
				}
				g.Close()
			} else {
				conn.Close()
			}
		}
		select {
		case <-vm.Done():
			t.Fatal("vm exited before its guest agent answered")
		case <-ctx.Done():
			t.Fatalf("guest agent never answered: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// run runs a shell command in the guest and returns its stdout; it fails
// the test unless the command exits 0.
func run(t *testing.T, g *envd.Client, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := g.Exec(ctx, wrenn.ExecRequest{Cmd: cmd})
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("exec %q: exit %d: %s", cmd, res.ExitCode, res.Stderr)
	}
	return string(res.Stdout)
}

func mustStart(t *testing.T, d vmm.Driver, c vmm.Config) vmm.VM {
	t.Helper()
	vm, err := d.Start(context.Background(), c)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = vm.Stop(context.Background()) })
	if vm.PID() <= 0 || !alive(vm.PID()) {
		t.Fatalf("pid %d is not running", vm.PID())
	}
	return vm
}

func waitConsole(t *testing.T, c vmm.Config, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(c.ConsoleLog)
		if strings.Contains(string(b), want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(c.ConsoleLog)
	t.Fatalf("console never said %q:\n%s", want, tail(b))
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// vmmProcesses counts processes whose command line names dir.
func vmmProcesses(dir string) int {
	n := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), dir) {
			n++
		}
	}
	return n
}
