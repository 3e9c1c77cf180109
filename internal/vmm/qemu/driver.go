// Package qemu is the VMM driver for QEMU's microvm machine, driven over
// QMP. It uses KVM where a probe shows guests really run under it, and TCG
// otherwise (DESIGN.md: kvm-pvm hosts). The host agent is its only user,
// through vmm.Driver.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

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
}

// Driver starts QEMU microvm VMs.
type Driver struct {
	bin    string
	log    *slog.Logger
	once   sync.Once
	accel  string
	tscKHz int // host TSC rate, for guests under TCG; 0 if unknown
	tcgCPU string
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
	return &Driver{bin: path, log: c.Logger, accel: c.Accel, tcgCPU: cpu}, nil
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
func (d *Driver) Start(ctx context.Context, c vmm.Config) (vmm.VM, error) {
	var files []*os.File
	if c.Tap != nil {
		files = append(files, c.Tap)
	}
	incomingFD := -1
	if c.Incoming != "" {
		f, err := os.Open(c.Incoming)
		if err != nil {
			return nil, fmt.Errorf("open vm state: %w", err)
		}
		defer f.Close()
		incomingFD = 3 + len(files)
		files = append(files, f)
	}
	tStart := time.Now()
	args := d.args(c, d.Accel(ctx, c.Kernel))
	logf, err := os.OpenFile(filepath.Join(c.RunDir, "qemu.log"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("qemu log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(d.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: QEMU outlives a host agent restart, and signals to
	// the agent's process group do not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.ExtraFiles = files // the tap is fd 3, the state after it
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	vm := newVM(cmd.Process.Pid, c)
	go func() {
		_ = cmd.Wait()
		close(vm.done)
	}()
	if incomingFD >= 0 {
		err = vm.restore(ctx, incomingFD, c.IncomingHasRAM, !c.Paused)
	} else {
		err = vm.connect(ctx)
	}
	if err != nil {
		_ = vm.kill()
		<-vm.done
		return nil, fmt.Errorf("qemu did not come up: %w%s", err, logTail(c.RunDir))
	}
	d.log.Debug("qemu started", slog.String("id", c.ID), slog.Bool("restored", incomingFD >= 0),
		slog.Duration("took", time.Since(tStart)))
	return vm, nil
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
	vm := newVM(pid, c)
	go func() {
		defer unix.Close(pidfd)
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err == nil || !errors.Is(err, unix.EINTR) {
				break
			}
		}
		close(vm.done)
	}()
	if err := vm.resumeStopped(ctx); err != nil {
		return nil, fmt.Errorf("adopt vm %s: %w", c.ID, err)
	}
	return vm, nil
}

func qmpSocket(runDir string) string { return filepath.Join(runDir, "qmp.sock") }

// args is QEMU's command line for c. Paths go into option strings, where
// a comma separates options: optValue doubles them.
func (d *Driver) args(c vmm.Config, accel string) []string {
	a := []string{
		"-name", "wrenn-" + optValue(c.ID),
		"-M", "microvm,acpi=off,x-option-roms=off,rtc=on" + memoryBackend(c),
		"-m", strconv.Itoa(c.MemoryMB),
		"-smp", strconv.Itoa(c.VCPUs),
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-serial", "file:" + c.ConsoleLog,
		"-kernel", c.Kernel,
		"-append", d.kernelArgs(c, accel),
		"-drive", "id=root,file=" + optValue(c.RootDisk) + ",format=" + optValue(c.RootDiskFormat) + ",if=none,cache=unsafe,discard=unmap",
		"-device", "virtio-blk-device,drive=root",
		"-device", "virtio-rng-device",
		"-device", "virtio-serial-device",
		"-chardev", "socket,id=envd,path=" + optValue(c.AgentSocket) + ",server=on,wait=off",
		"-device", "virtserialport,chardev=envd,name=wrenn.envd",
		"-qmp", qmpArg(c.RunDir),
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
	if c.Tap != nil {
		a = append(a,
			"-netdev", "tap,id=net0,fd=3,vhost=off",
			"-device", "virtio-net-device,netdev=net0,mac="+optValue(c.MAC))
	}
	return a
}

// optValue escapes a value for a QEMU option string, where "," ends it
// and ",," stands for a comma.
func optValue(v string) string { return strings.ReplaceAll(v, ",", ",,") }

// qmpArg is the -qmp argument of the VM whose run directory is runDir:
// also how Adopt and Strays recognise its process.
func qmpArg(runDir string) string {
	return "unix:" + optValue(qmpSocket(runDir)) + ",server=on,wait=off"
}

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
// each other. Under KVM the guest keeps it.
func (d *Driver) kernelArgs(c vmm.Config, accel string) string {
	if accel != AccelTCG {
		return c.KernelArgs
	}
	args := c.KernelArgs + " norandmaps"
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
