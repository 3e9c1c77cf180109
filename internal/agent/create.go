package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/disk"
	"github.com/wrennhq/wrenn/internal/envd"
	"github.com/wrennhq/wrenn/internal/layout"
	"github.com/wrennhq/wrenn/internal/netslot"
	"github.com/wrennhq/wrenn/internal/vmm"
)

// guestMAC is every guest's MAC: each sandbox has a network namespace of
// its own, so they need not differ, and restored snapshots keep theirs.
const guestMAC = "02:77:72:6e:00:01"

// kernelArgs is the guest kernel command line of docs/GUEST.md. The
// hostname is a sandbox ID or pool name, which checkSandboxID and the
// pool keep to letters, digits and '-'.
func kernelArgs(slot *netslot.Slot, hostname string) string {
	return fmt.Sprintf("console=ttyS0 reboot=t panic=-1 root=/dev/vda rw rootfstype=ext4 "+
		"init=/usr/local/bin/envd quiet wrenn.ip=%s/30 wrenn.gw=%s wrenn.dns=1.1.1.1 wrenn.hostname=%s",
		slot.GuestIP, slot.TapIP, hostname)
}

// origin is what a new sandbox starts from: a template to restore (a
// team's snapshot template or a base's warm snapshot), or, with tmpl "",
// a base to boot.
type origin struct {
	tmpl layout.TemplateDir
	base Base
}

// CreateSandbox starts a sandbox, booting a base template or restoring a
// snapshot template, and returns once its guest agent answers. On any
// failure everything acquired so far is released.
func (m *Manager) CreateSandbox(ctx context.Context, spec wrenn.SandboxSpec) (net wrenn.SandboxNet, err error) {
	if err := checkSpec(spec); err != nil {
		return net, err
	}
	from, err := m.origin(spec)
	if err != nil {
		return net, err
	}
	rec := record{ID: spec.ID, TeamID: spec.TeamID, Template: spec.Template, VCPUs: spec.VCPUs, MemoryMB: spec.MemoryMB,
		Driver: m.cfg.Driver.Name(), Base: from.base.Name, Kernel: from.base.Kernel,
		OwnMemory: from.tmpl == "", FromSnapshot: from.tmpl != "", CreatedAt: m.cfg.Now().UTC(), Network: &spec.Network}
	key := poolKey{team: spec.TemplateTeamID, name: spec.Template}
	var member *poolMember
	if from.tmpl != "" {
		// One ready, or the next the pool makes (pool.go).
		member = m.pool.claim(ctx, key, from.tmpl, m.cfg.BootTimeout)
	}
	// A create that claims a pool member takes the VM the member holds;
	// any other must fit the host (admit.go).
	var sb *sandbox
	n, err := from.need(spec.VCPUs, spec.MemoryMB)
	if err == nil {
		sb, err = m.reserveWithin(ctx, spec.ID, n, member)
	}
	if err != nil {
		if member != nil {
			m.pool.endAsync(member)
		}
		return net, err
	}
	sb.op.Lock()
	defer sb.op.Unlock()
	defer func() {
		if err != nil {
			sb.move(lcGone)
			m.forget(sb)
		}
	}()
	start := time.Now()
	if from.tmpl != "" {
		if net, ok := m.claim(ctx, sb, rec, key, from.tmpl, member); ok {
			sb.log.Info("sandbox started", slog.String(attrTemplate, spec.Template), slog.Bool("restored", true),
				slog.Bool("from_pool", true), slog.String("run_dir", sb.dir.Path()), slog.Int(attrPID, rec.PID),
				slog.Duration("took", time.Since(start)))
			return net, nil
		}
		if member != nil {
			// It was admitted as the member's; it needs a VM of its own now.
			if err := m.admitStarting(sb); err != nil {
				return net, err
			}
		}
	}
	restored := m.pool.restore() // refills hold off meanwhile
	mach, err := m.start(ctx, sb.dir, &rec, from)
	restored()
	if err != nil {
		return net, err
	}
	sb.run(mach, rec, lcRunning)
	go m.watch(sb, mach)
	sb.log.Info("sandbox started", slog.String(attrTemplate, spec.Template), slog.Bool("restored", from.tmpl != ""),
		slog.Int(attrPID, rec.PID), slog.Duration("took", time.Since(start)))
	return mach.net, nil
}

// checkSpec checks what of spec reaches paths and command lines.
func checkSpec(spec wrenn.SandboxSpec) error {
	if err := checkSandboxID(spec.ID); err != nil {
		return err
	}
	if spec.TeamID != "" && !wrenn.ValidID(wrenn.PrefixTeam, spec.TeamID) {
		return wrenn.Errorf(wrenn.EInvalid, "invalid team id")
	}
	if spec.TemplateTeamID != "" {
		if !wrenn.ValidID(wrenn.PrefixTeam, spec.TemplateTeamID) {
			return wrenn.Errorf(wrenn.EInvalid, "invalid template team id")
		}
		if err := wrenn.ValidateTemplateName(spec.Template); err != nil {
			return err
		}
	}
	if spec.VCPUs < 1 || spec.MemoryMB < 1 {
		return wrenn.Errorf(wrenn.EInvalid, "vcpus and memory_mb must be positive")
	}
	return nil
}

func checkSandboxID(id string) error {
	if !wrenn.ValidID(wrenn.PrefixSandbox, id) {
		return wrenn.Errorf(wrenn.EInvalid, "invalid sandbox id")
	}
	return nil
}

// origin finds what spec's sandbox starts from.
func (m *Manager) origin(spec wrenn.SandboxSpec) (origin, error) {
	if spec.TemplateTeamID == "" {
		b, ok := m.bases[spec.Template]
		if !ok {
			return origin{}, wrenn.Errorf(wrenn.EInvalid, "template %q is not available on this host", spec.Template)
		}
		return origin{tmpl: m.warm.snapshot(b.Name, spec.VCPUs, spec.MemoryMB), base: b}, nil // tmpl "": boot
	}
	tmpl := m.cfg.Layout.Template(spec.TemplateTeamID, spec.Template)
	meta, err := readTemplateMeta(tmpl)
	if err != nil {
		return origin{}, err
	}
	if meta.VCPUs != spec.VCPUs || meta.MemoryMB != spec.MemoryMB {
		return origin{}, wrenn.Errorf(wrenn.EInvalid, "template %q runs with %d vCPUs and %d MiB, not %d and %d",
			spec.Template, meta.VCPUs, meta.MemoryMB, spec.VCPUs, spec.MemoryMB)
	}
	b, ok := m.bases[meta.Base]
	if !ok {
		return origin{}, wrenn.Errorf(wrenn.EInvalid, "template %q needs base %q, which this host lacks", spec.Template, meta.Base)
	}
	b.Kernel = meta.Kernel // the kernel it was booted with
	if s := m.store(); s != nil {
		if err := s.checkShared(tmpl.Disk(), meta.Kernel); err != nil {
			return origin{}, fmt.Errorf("template %q: %w", spec.Template, err)
		}
	}
	return origin{tmpl: tmpl, base: b}, nil
}

// start makes the run directory dir and its root disk and launches a VM
// in it as rec describes, restoring from.tmpl or booting from.base. On
// failure it removes what it made.
func (m *Manager) start(ctx context.Context, dir layout.SandboxDir, rec *record, from origin) (_ *machine, err error) {
	if err := os.MkdirAll(m.cfg.Layout.Sandboxes(), 0o700); err != nil {
		return nil, fmt.Errorf("create sandboxes dir: %w", err)
	}
	if err := os.Mkdir(dir.Path(), 0o700); err != nil {
		return nil, fmt.Errorf("create run dir: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, removeRunDir(dir))
		}
	}()
	incoming := ""
	if from.tmpl == "" {
		rec.DataPort = true // a boot: every VM booted now has the bulk port
		err = disk.Overlay(ctx, from.base.RootFS, "raw", dir.RootDisk())
	} else {
		meta, merr := readTemplateMeta(from.tmpl)
		if merr != nil {
			return nil, merr
		}
		rec.DataPort = meta.DataPort // the snapshot's devices
		// Links, not paths: the template may be deleted while this runs.
		if err := linkOrCopy(from.tmpl.Memory(), dir.TemplateMemory()); err != nil {
			return nil, err
		}
		if err := linkOrCopy(from.tmpl.Disk(), dir.TemplateDisk()); err != nil {
			return nil, err
		}
		err = disk.Overlay(ctx, dir.TemplateDisk(), "qcow2", dir.RootDisk())
		incoming = from.tmpl.VMState()
	}
	if err != nil {
		return nil, err
	}
	return m.launch(ctx, dir, rec, incoming, false)
}

// launch starts the VM of the run directory dir as rec describes, from
// the device state file incoming if not empty (withRAM: holding the RAM),
// with a new network slot; waits for its guest agent, gives the guest its
// identity and records rec. On failure it frees what it acquired; rec.PID
// then says whether a VM got as far as running.
func (m *Manager) launch(ctx context.Context, dir layout.SandboxDir, rec *record, incoming string, withRAM bool) (_ *machine, err error) {
	mach := &machine{}
	defer func() {
		if err != nil {
			logErr(m.log.With(slog.String(attrSandboxID, rec.ID)), "undo failed start", mach.release.run(context.WithoutCancel(ctx)))
		}
	}()
	slot, err := m.cfg.Network.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire network slot: %w", err)
	}
	mach.release.addBackground(func(ctx context.Context) error { return m.cfg.Network.Release(ctx, slot) })
	mach.slot = slot
	rec.Slot = slot.Index
	if rec.Network != nil {
		if err := m.cfg.Network.SetEgress(ctx, slot, *rec.Network); err != nil {
			return nil, fmt.Errorf("egress policy: %w", err)
		}
	}
	mach.net = wrenn.SandboxNet{GuestIP: slot.GuestIP.String(), HostIP: slot.HostIP.String()}

	tap, err := slot.OpenTap()
	if err != nil {
		return nil, fmt.Errorf("open tap: %w", err)
	}
	defer tap.Close() // QEMU holds its own copy
	c := vmConfig(*rec, dir)
	c.KernelArgs = kernelArgs(slot, rec.ID)
	c.Tap, c.Incoming, c.IncomingHasRAM = tap, incoming, withRAM
	t0 := time.Now()
	vm, err := m.cfg.Driver.Start(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("start vm: %w", err)
	}
	mach.vm = vm
	mach.release.add(vm.Stop)
	rec.PID = vm.PID()

	t1 := time.Now()
	// The identity is the first request: it proves the session as a ping
	// would, one round trip to a cold guest sooner.
	client, err := dialGuest(ctx, dir, vm, m.cfg.BootTimeout, m.log, func(ctx context.Context, c *envd.Client) error {
		return m.initGuest(ctx, c, rec.ID)
	})
	if err != nil {
		return nil, err
	}
	mach.envd = client
	mach.release.add(mach.closeGuest)
	newBulk(ctx, *rec, dir, mach, m.log)
	m.log.Debug("vm launched", slog.String(attrSandboxID, rec.ID), slog.Duration("start", t1.Sub(t0)),
		slog.Duration("connect_init", time.Since(t1)))
	if err := writeRecord(dir, *rec); err != nil {
		return nil, err
	}
	return mach, nil
}

// closeGuest ends the guest agent session the machine holds now (a health
// check may have replaced the one it started with).
func (mach *machine) closeGuest(context.Context) error { return mach.envd.Close() }

// vmConfig is the VM of rec; Tap, KernelArgs and Incoming are the caller's.
func vmConfig(rec record, dir layout.SandboxDir) vmm.Config {
	c := vmm.Config{
		ID: rec.ID, RunDir: dir.Path(), Kernel: rec.Kernel,
		RootDisk: dir.RootDisk(), RootDiskFormat: "qcow2",
		VCPUs: rec.VCPUs, MemoryMB: rec.MemoryMB, MAC: guestMAC,
		AgentSocket: dir.EnvdSocket(), ConsoleLog: dir.ConsoleLog(),
		MemoryFile: dir.Memory(), MemoryShared: true,
	}
	if rec.DataPort {
		c.DataSocket = dir.DataSocket()
	}
	if !rec.OwnMemory {
		c.MemoryFile, c.MemoryShared = dir.TemplateMemory(), false
	}
	return c
}

// linkOrCopy hard-links src to dst, or copies it where a link cannot be
// made (another file system).
func linkOrCopy(src, dst string) error {
	err := os.Link(src, dst)
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return wrenn.Errorf(wrenn.EInvalid, "template files are missing on this host")
	}
	if !errors.Is(err, syscall.EXDEV) {
		return fmt.Errorf("link template file: %w", err)
	}
	cmd := exec.Command("cp", "--sparse=always", "--reflink=auto", src, dst)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("copy template file: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// connectGuest connects to the guest agent's channel in dir and waits
// until the guest agent answers a ping, the VM dies, or timeout passes. A
// session that breaks while the guest boots is dialled afresh.
func connectGuest(ctx context.Context, dir layout.SandboxDir, vm vmm.VM, timeout time.Duration, log *slog.Logger) (*envd.Client, error) {
	return dialGuest(ctx, dir, vm, timeout, log, func(ctx context.Context, c *envd.Client) error { return c.Ping(ctx) })
}

// dialGuest is connectGuest with first as the request that shows the
// guest agent answers, made within the timeout (its ctx). A session that
// fails before the guest answers is dialled afresh; an answer that is an
// error is returned as it is.
func dialGuest(ctx context.Context, dir layout.SandboxDir, vm vmm.VM, timeout time.Duration, log *slog.Logger, first func(context.Context, *envd.Client) error) (*envd.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	go func() {
		select {
		case <-vm.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	var d net.Dialer
	var last error
	for {
		conn, err := d.DialContext(ctx, "unix", dir.EnvdSocket())
		if err == nil {
			var client *envd.Client
			if client, err = envd.NewClient(conn, log); err == nil {
				if err = first(ctx, client); err == nil {
					return client, nil
				}
				client.Close()
				if _, answered := errors.AsType[*wrenn.Error](err); answered {
					return nil, err
				}
			} else {
				conn.Close()
			}
		}
		last = err
		select {
		case <-vm.Done():
			return nil, errors.New("vm exited before its guest agent answered")
		case <-ctx.Done():
			return nil, fmt.Errorf("guest agent did not answer within %s: %w", timeout, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// initGuest gives a fresh or restored guest its identity: clock, a
// reseeded RNG and its hostname.
func (m *Manager) initGuest(ctx context.Context, c *envd.Client, hostname string) error {
	entropy := make([]byte, 64)
	rand.Read(entropy)
	if err := c.Init(ctx, envd.InitRequest{Now: m.cfg.Now(), Entropy: entropy, Hostname: hostname}); err != nil {
		return fmt.Errorf("init guest: %w", err)
	}
	return nil
}
