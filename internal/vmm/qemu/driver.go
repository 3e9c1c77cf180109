// Package qemu is the VMM driver for QEMU's microvm machine, driven over
// QMP. It uses KVM where a probe shows guests really run under it, and TCG
// otherwise (DESIGN.md: kvm-pvm hosts). The host agent is its only user,
// through vmm.Driver.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wrennhq/wrenn/internal/cgroup"
	"github.com/wrennhq/wrenn/internal/jail"
	"github.com/wrennhq/wrenn/internal/vmm"
)

var _ vmm.Driver = (*Driver)(nil)

// DefaultTCGCPU is the CPU model guests see under TCG.
const DefaultTCGCPU = "max"

// DriverName is recorded with each VM this driver starts.
const DriverName = "qemu"

// Config configures the driver.
type Config struct {
	Binary string // qemu-system-x86_64; empty means found on PATH
	// Accel forces AccelKVM or AccelTCG; empty means probe once, on first
	// Start. Anything else is refused.
	Accel string
	// TCGCPU is the CPU model guests see under TCG; empty means
	// DefaultTCGCPU.
	TCGCPU string
	Logger *slog.Logger

	// UIDBase and UIDCount are the users VMs run as (jail.go); 0 means
	// DefaultUIDBase, DefaultUIDCount.
	UIDBase, UIDCount int
	// JailRoot is where each VM's jail root is mounted, in the VM's own
	// mount namespace; "" means DefaultJailRoot.
	JailRoot string
	// Cgroups is the host's cgroup layout, each VM going in a group of
	// its own; nil runs VMs without limits.
	Cgroups *cgroup.Host
}

// Driver starts QEMU microvm VMs.
type Driver struct {
	bin      string
	log      *slog.Logger
	once     sync.Once
	accel    string
	tscKHz   int // host TSC rate, for guests under TCG; 0 if unknown
	tcgCPU   string
	uids     *uids
	jailRoot string
	cg       *cgroup.Host

	mu     sync.Mutex
	groups map[string]bool // the control groups of VMs running or starting
}

// New returns a Driver. It fails if c.Accel is not an accelerator or QEMU
// is not installed.
func New(c Config) (*Driver, error) {
	switch c.Accel {
	case "", AccelKVM, AccelTCG:
	default:
		return nil, fmt.Errorf("qemu: accelerator %q: want %q, %q, or empty to probe", c.Accel, AccelKVM, AccelTCG)
	}
	bin := c.Binary
	if bin == "" {
		bin = "qemu-system-x86_64"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("qemu: %w (install qemu-system-x86)", err)
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real // what /proc/<pid>/exe shows (Strays)
	}
	cpu := c.TCGCPU
	if cpu == "" {
		cpu = DefaultTCGCPU
	}
	d := &Driver{bin: path, log: c.Logger, accel: c.Accel, tcgCPU: cpu, jailRoot: c.JailRoot, cg: c.Cgroups,
		uids:   &uids{base: c.UIDBase, count: c.UIDCount, used: map[int]bool{}},
		groups: map[string]bool{}}
	if d.uids.base == 0 {
		d.uids.base = DefaultUIDBase
	}
	if d.uids.count == 0 {
		d.uids.count = DefaultUIDCount
	}
	if d.uids.base <= 0 || d.uids.count < 2 {
		return nil, fmt.Errorf("qemu: VM users from %d, %d of them: want a positive base and at least 2", d.uids.base, d.uids.count)
	}
	if d.jailRoot == "" {
		d.jailRoot = DefaultJailRoot
	}
	return d, nil
}

// Name implements vmm.Driver.
func (d *Driver) Name() string { return DriverName }

// Accel returns the accelerator in use, probing on first call.
func (d *Driver) Accel(ctx context.Context, kernel string) string {
	d.once.Do(func() {
		var reason string
		if d.accel == "" {
			d.accel, reason = probeAccel(ctx, d.bin, kernel)
		} else {
			reason = "configured"
		}
		if d.accel == AccelTCG {
			d.tscKHz = hostTSCkHz()
			d.log.Warn("guests run under TCG software emulation, not KVM", slog.String("reason", reason),
				slog.Int("tsc_khz", d.tscKHz))
		} else {
			d.log.Info("guests run under KVM", slog.String("reason", reason))
		}
	})
	return d.accel
}

// CurrentAccel is the accelerator chosen, or "" before the first Start.
func (d *Driver) CurrentAccel() string { return d.accel }

// Start implements vmm.Driver.
func (d *Driver) Start(ctx context.Context, c vmm.Config) (_ vmm.VM, err error) {
	tStart := time.Now()
	accel := d.Accel(ctx, c.Kernel)
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	uid, err := d.uids.take()
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { d.uids.release(uid) })
	if err := d.prepareFiles(c, uid); err != nil {
		return nil, err
	}
	// The files QEMU inherits, from fd 3 on.
	var files []*os.File
	pass := func(f *os.File) int {
		files = append(files, f)
		return 2 + len(files)
	}
	fds := fdArgs{tap: -1, incoming: -1, data: -1}
	var listeners []*os.File
	defer func() {
		for _, f := range listeners {
			f.Close()
		}
	}()
	if c.Tap != nil {
		fds.tap = pass(c.Tap)
	}
	for _, l := range []struct {
		path string
		fd   *int
	}{{qmpSocket(c.RunDir), &fds.qmp}, {c.AgentSocket, &fds.agent}, {consoleSocket(c.RunDir), &fds.console}} {
		f, err := listen(l.path)
		if err != nil {
			return nil, err
		}
		// Closed as soon as QEMU has its own copy: were the QEMU to die
		// before accepting, a listener still open here would leave the
		// console's queued connection waiting for ever.
		listeners = append(listeners, f)
		*l.fd = pass(f)
	}
	// The bulk data port (issue 14): only where asked for, since a
	// snapshot restores only into the devices it was taken with.
	if c.DataSocket != "" {
		f, err := listen(c.DataSocket)
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, f)
		fds.data = pass(f)
	}
	if c.Incoming != "" {
		f, err := os.Open(c.Incoming)
		if err != nil {
			return nil, fmt.Errorf("open vm state: %w", err)
		}
		defer f.Close()
		fds.incoming = pass(f)
	}
	group, err := d.createGroup(c, accel)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { d.removeGroup(group) })
	spec, err := d.jailSpec(c, append([]string{d.bin}, d.args(c, accel, fds)...), uid, accel, group)
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(c.RunDir, "qemu.log"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("qemu log: %w", err)
	}
	defer logf.Close()
	cmd, err := jail.Command(spec)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = files
	console, err := startConsole(consoleSocket(c.RunDir), c.ConsoleLog)
	if err != nil {
		return nil, err
	}
	err = cmd.Start()
	for _, f := range listeners {
		f.Close()
	}
	listeners = nil
	if err != nil {
		<-console // its connection ends with the listener
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	undo = nil // the VM's end undoes the rest
	vm := newVM(cmd.Process.Pid, c)
	go func() {
		_ = cmd.Wait()
		d.ended(uid, group, console)
		close(vm.done)
	}()
	if fds.incoming >= 0 {
		err = vm.restore(ctx, fds.incoming, c.IncomingHasRAM, !c.Paused)
	} else {
		err = vm.connect(ctx)
	}
	if err != nil {
		_ = vm.kill()
		<-vm.done
		return nil, fmt.Errorf("qemu did not come up: %w%s", err, logTail(c.RunDir))
	}
	d.log.Debug("qemu started", slog.String("id", c.ID), slog.Bool("restored", fds.incoming >= 0),
		slog.Int("uid", uid), slog.Duration("took", time.Since(tStart)))
	return vm, nil
}

// fdArgs are the descriptors QEMU inherits; -1 for none.
type fdArgs struct {
	tap, qmp, agent, console, incoming int
	data                               int // the bulk data port's socket
}

// listen makes a listening Unix socket at path, replacing what an earlier
// VM of the run directory left there.
func listen(path string) (*os.File, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	l.SetUnlinkOnClose(false) // the socket outlives this listener, in QEMU
	f, err := l.File()
	l.Close()
	return f, err
}

// createGroup makes the control group of the VM of c, if the driver puts
// VMs in groups.
func (d *Driver) createGroup(c vmm.Config, accel string) (*cgroup.Group, error) {
	if d.cg == nil {
		return nil, nil
	}
	name := groupName(c.RunDir)
	d.mu.Lock()
	d.groups[name] = true
	d.mu.Unlock()
	g, err := d.cg.Create(name, limits(c, accel))
	if err != nil {
		d.mu.Lock()
		delete(d.groups, name)
		d.mu.Unlock()
		return nil, fmt.Errorf("jail: %w", err)
	}
	return g, nil
}

func (d *Driver) removeGroup(g *cgroup.Group) {
	if g == nil {
		return
	}
	if err := g.Remove(); err != nil {
		d.log.Warn("remove a VM's control group", slog.String("cgroup", g.Name), slog.Any("error", err))
	}
	d.mu.Lock()
	delete(d.groups, g.Name)
	d.mu.Unlock()
}

// ended frees what a VM held once its process has exited.
func (d *Driver) ended(uid int, group *cgroup.Group, console <-chan struct{}) {
	if console != nil {
		<-console // ends with QEMU's end of the socket
	}
	d.removeGroup(group)
	d.uids.release(uid)
}

// Adopt implements vmm.Driver.
func (d *Driver) Adopt(ctx context.Context, c vmm.Config, pid int) (vmm.VM, error) {
	ok, err := d.runsIn(pid, c.RunDir)
	if err != nil {
		return nil, fmt.Errorf("adopt vm %s: process %d: %w", c.ID, pid, err)
	}
	if !ok {
		return nil, fmt.Errorf("adopt vm %s: process %d is not its qemu", c.ID, pid)
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("adopt vm %s: pidfd: %w", c.ID, err)
	}
	uid, err := uidOf(pid)
	if err != nil {
		unix.Close(pidfd)
		return nil, fmt.Errorf("adopt vm %s: %w", c.ID, err)
	}
	d.uids.hold(uid)
	var group *cgroup.Group
	if d.cg != nil {
		if name, err := d.cg.GroupOf("/proc", pid); err == nil && name != "" {
			group = d.cg.Open(name)
			d.mu.Lock()
			d.groups[name] = true
			d.mu.Unlock()
		}
	}
	// The console carries on where the last agent left it; without it the
	// guest runs on, its console unread.
	console, err := startConsole(consoleSocket(c.RunDir), c.ConsoleLog)
	if err != nil {
		d.log.Warn("adopted vm's console is not logged", slog.String("id", c.ID), slog.Any("error", err))
	}
	vm := newVM(pid, c)
	go func() {
		defer unix.Close(pidfd)
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err == nil || !errors.Is(err, unix.EINTR) {
				break
			}
		}
		d.ended(uid, group, console)
		close(vm.done)
	}()
	if err := vm.resumeStopped(ctx); err != nil {
		return nil, fmt.Errorf("adopt vm %s: %w", c.ID, err)
	}
	return vm, nil
}

func qmpSocket(runDir string) string { return filepath.Join(runDir, "qmp.sock") }

// args is QEMU's command line for c, with the inherited descriptors fds.
// Paths go into option strings, where a comma separates options: optValue
// doubles them.
func (d *Driver) args(c vmm.Config, accel string, fds fdArgs) []string {
	a := []string{
		"-name", nameArg(c.RunDir),
		"-M", "microvm,acpi=off,x-option-roms=off,rtc=on" + memoryBackend(c),
		"-m", strconv.Itoa(c.MemoryMB),
		"-smp", strconv.Itoa(c.VCPUs),
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-chardev", fmt.Sprintf("socket,id=console,fd=%d,server=on,wait=off", fds.console),
		"-serial", "chardev:console",
		"-kernel", c.Kernel,
		"-append", d.kernelArgs(c, accel),
		"-drive", "id=root,file=" + optValue(c.RootDisk) + ",format=" + optValue(c.RootDiskFormat) + ",if=none,cache=unsafe,discard=unmap",
		"-device", "virtio-blk-device,drive=root",
		"-device", "virtio-rng-device",
		"-device", "virtio-serial-device",
		"-chardev", fmt.Sprintf("socket,id=envd,fd=%d,server=on,wait=off", fds.agent),
		"-device", "virtserialport,chardev=envd,name=wrenn.envd",
		"-chardev", fmt.Sprintf("socket,id=qmp,fd=%d,server=on,wait=off", fds.qmp),
		"-mon", "chardev=qmp,mode=control",
		"-sandbox", sandboxArg,
	}
	if fds.data >= 0 {
		a = append(a,
			"-chardev", fmt.Sprintf("socket,id=data,fd=%d,server=on,wait=off", fds.data),
			"-device", "virtserialport,chardev=data,name=wrenn.data")
	}
	if c.MemoryFile != "" {
		share := "off"
		if c.MemoryShared {
			share = "on"
		}
		a = append(a, "-object", fmt.Sprintf("memory-backend-file,id=mem,size=%dM,mem-path=%s,share=%s",
			c.MemoryMB, optValue(c.MemoryFile), share))
	}
	if c.Incoming != "" {
		a = append(a, "-incoming", "defer")
	}
	if accel == AccelKVM {
		a = append(a, "-accel", "kvm", "-cpu", "host")
	} else {
		// A modest translation cache: the default reserves far more than
		// a small guest needs, for each of many sandboxes.
		a = append(a, "-accel", "tcg,tb-size=128", "-cpu", d.tcgCPU)
	}
	if fds.tap >= 0 {
		a = append(a,
			"-netdev", fmt.Sprintf("tap,id=net0,fd=%d,vhost=off", fds.tap),
			"-device", "virtio-net-device,netdev=net0,mac="+optValue(c.MAC))
	}
	return a
}

// optValue escapes a value for a QEMU option string, where "," ends it
// and ",," stands for a comma.
func optValue(v string) string { return strings.ReplaceAll(v, ",", ",,") }

// nameArg is the -name argument of the VM whose run directory is runDir:
// also how Adopt and Strays recognise its process.
func nameArg(runDir string) string { return "wrenn:" + optValue(runDir) }

func memoryBackend(c vmm.Config) string {
	if c.MemoryFile == "" {
		return ""
	}
	return ",memory-backend=mem"
}

// kernelArgs adds what the accelerator needs to the guest command line.
//
// Under TCG, norandmaps turns off address-space randomisation in the
// guest: TCG caches translated code by virtual address, so with ASLR every
// new process (ld.so and libc at fresh addresses) is translated anew,
// which made a fork+exec cost tens of milliseconds. The sandbox's processes
// all belong to one tenant, so the randomisation protected them only from
// each other. Under KVM the guest keeps it. wrenn.emulated=1 has envd tune
// its runtime for emulation (docs/GUEST.md).
func (d *Driver) kernelArgs(c vmm.Config, accel string) string {
	if accel != AccelTCG {
		return c.KernelArgs
	}
	args := c.KernelArgs + " norandmaps wrenn.emulated=1"
	if d.tscKHz > 0 {
		args += fmt.Sprintf(" tsc_early_khz=%d tsc=reliable", d.tscKHz)
	}
	return args
}

func logTail(runDir string) string {
	b, err := os.ReadFile(filepath.Join(runDir, "qemu.log"))
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2048 {
		b = b[len(b)-2048:]
	}
	return ": " + strings.TrimSpace(string(b))
}

// vm is one QEMU process. It holds no QMP connection between operations:
// QEMU serves one QMP client at a time, and a VM must stay adoptable by a
// new agent process while an old one may still linger.
type vm struct {
	pid       int
	qmpPath   string
	memFile   bool // RAM is the memory backend "mem", a file
	memShared bool // RAM is a shared file, left out of snapshots
	done      chan struct{}
}

func newVM(pid int, c vmm.Config) *vm {
	return &vm{pid: pid, qmpPath: qmpSocket(c.RunDir), memFile: c.MemoryFile != "", memShared: c.MemoryFile != "" && c.MemoryShared,
		done: make(chan struct{})}
}

func (v *vm) PID() int              { return v.pid }
func (v *vm) Done() <-chan struct{} { return v.done }

// connect proves QEMU is up and answering QMP.
func (v *vm) connect(ctx context.Context) error {
	q, err := v.dial(ctx, 10*time.Second)
	if err != nil {
		return err
	}
	return q.Close()
}

// resumeStopped proves QEMU answers QMP and lets a guest run that a
// snapshot stopped: an agent that dies between stopping a VM for a
// snapshot and ending it leaves the guest stopped, and adopting it means
// taking it back to where it was.
func (v *vm) resumeStopped(ctx context.Context) error {
	q, err := v.dial(ctx, 10*time.Second)
	if err != nil {
		return err
	}
	defer q.Close()
	var st struct {
		Status string `json:"status"`
	}
	if err := q.Execute(ctx, "query-status", nil, &st); err != nil {
		return err
	}
	switch st.Status {
	case "paused", "postmigrate", "finish-migrate":
		if st.Status == "finish-migrate" {
			_ = q.Execute(ctx, "migrate_cancel", nil, nil)
		}
		return q.Execute(ctx, "cont", nil, nil)
	}
	return nil
}

// dial opens a QMP session, giving up after timeout or when QEMU exits.
func (v *vm) dial(ctx context.Context, timeout time.Duration) (*qmp, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	go func() {
		select {
		case <-v.done:
			cancel() // no point waiting for a socket of a dead process
		case <-ctx.Done():
		}
	}()
	return dialQMP(ctx, v.qmpPath)
}

func (v *vm) kill() error {
	err := unix.Kill(v.pid, unix.SIGKILL)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// stopGrace is how long QEMU gets to quit when asked before it is killed.
const stopGrace = 2 * time.Second

// Stop implements vmm.VM: QMP quit, then SIGKILL if QEMU lingers.
func (v *vm) Stop(ctx context.Context) error {
	select {
	case <-v.done:
		return nil
	default:
	}
	if q, err := v.dial(ctx, stopGrace); err == nil {
		qctx, cancel := context.WithTimeout(ctx, stopGrace)
		_ = q.Execute(qctx, "quit", nil, nil) // the connection may close before the answer
		cancel()
		q.Close()
	}
	select {
	case <-v.done:
	case <-time.After(stopGrace):
		if err := v.kill(); err != nil {
			return fmt.Errorf("kill qemu %d: %w", v.pid, err)
		}
		select {
		case <-v.done:
		case <-ctx.Done():
			return fmt.Errorf("qemu %d did not exit: %w", v.pid, ctx.Err())
		}
	}
	return nil
}

// Fingerprint says what a snapshot this driver takes depends on besides
// the VM's configuration: the QEMU binary, the accelerator and the CPU
// model the guest sees.
func (d *Driver) Fingerprint(ctx context.Context, kernel string) string {
	accel := d.Accel(ctx, kernel)
	cpu := d.tcgCPU
	if accel == AccelKVM {
		cpu = "host"
	}
	bin := d.bin
	if fi, err := os.Stat(d.bin); err == nil {
		bin = fmt.Sprintf("%s %d %d", d.bin, fi.Size(), fi.ModTime().UnixNano())
	}
	return fmt.Sprintf("%s|%s|%s", bin, accel, cpu)
}
