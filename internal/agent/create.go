package agent

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

// kernelArgs is the guest kernel command line of docs/GUEST.md.
func kernelArgs(slot *netslot.Slot, hostname string) string {
	return fmt.Sprintf("console=ttyS0 reboot=t panic=-1 root=/dev/vda rw rootfstype=ext4 "+
		"init=/usr/local/bin/envd quiet wrenn.ip=%s/30 wrenn.gw=%s wrenn.dns=1.1.1.1 wrenn.hostname=%s",
		slot.GuestIP, slot.TapIP, hostname)
}

// state is what a sandbox's run directory records, so that a restarted
// agent can adopt the VM, or keep the sandbox paused.
type state struct {
	ID       string `json:"id"`
	TeamID   string `json:"team_id"`
	Template string `json:"template"`
	Base     string `json:"base"` // the base template its disk chain ends in
	VCPUs    int    `json:"vcpus"`
	MemoryMB int    `json:"memory_mb"`
	Kernel   string `json:"kernel"`
	Driver   string `json:"driver"`
	PID      int    `json:"pid"`
	Slot     int    `json:"slot"`
	// OwnMemory: guest RAM is the sandbox's own shared file; otherwise a
	// private mapping of its template's memory.
	OwnMemory bool `json:"own_memory"`
	// FromSnapshot: restored from a template (a team's or a base's warm
	// snapshot); the root disk is an overlay over TemplateDisk.
	FromSnapshot bool `json:"from_snapshot,omitempty"`
	// Paused: no VM runs; VMState holds the device state (and, without
	// OwnMemory, the RAM) to resume from.
	Paused bool `json:"paused,omitempty"`
	// Pool: a warm pool member no create has claimed yet (pool.go).
	Pool bool `json:"pool,omitempty"`
	// Resuming: a resume began. Once the guest has run, memory and disk
	// no longer match the snapshot, so an agent that finds this set after
	// a crash cannot trust the paused state and gives the sandbox up.
	Resuming  bool      `json:"resuming,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func writeState(dir layout.SandboxDir, st state) error {
	return writeJSONFile(dir.State(), st)
}

// writeJSONFile replaces path with v's JSON, atomically.
func writeJSONFile(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// CreateSandbox starts a sandbox, booting a base template or restoring a
// snapshot template, and returns once its guest agent answers. On any
// failure everything acquired so far is released.
func (m *Manager) CreateSandbox(ctx context.Context, spec wrenn.SandboxSpec) (net wrenn.SandboxNet, err error) {
	st := state{ID: spec.ID, TeamID: spec.TeamID, Template: spec.Template,
		VCPUs: spec.VCPUs, MemoryMB: spec.MemoryMB, Driver: m.cfg.Driver.Name(), CreatedAt: m.cfg.Now().UTC()}
	var tmpl layout.TemplateDir
	var base Base
	if spec.TemplateTeamID == "" {
		b, ok := m.bases[spec.Template]
		if !ok {
			return net, wrenn.Errorf(wrenn.EInvalid, "template %q is not available on this host", spec.Template)
		}
		base = b
		tmpl = m.warmSnapshot(b.Name, spec.VCPUs, spec.MemoryMB) // "" if none: boot
	} else {
		tmpl = m.cfg.Layout.Template(spec.TemplateTeamID, spec.Template)
		meta, err := readTemplateMeta(tmpl)
		if err != nil {
			return net, err
		}
		if meta.VCPUs != spec.VCPUs || meta.MemoryMB != spec.MemoryMB {
			return net, wrenn.Errorf(wrenn.EInvalid, "template %q runs with %d vCPUs and %d MiB, not %d and %d",
				spec.Template, meta.VCPUs, meta.MemoryMB, spec.VCPUs, spec.MemoryMB)
		}
		b, ok := m.bases[meta.Base]
		if !ok {
			return net, wrenn.Errorf(wrenn.EInvalid, "template %q needs base %q, which this host lacks", spec.Template, meta.Base)
		}
		base = b
		base.Kernel = meta.Kernel // the kernel it was booted with
	}
	st.Base, st.Kernel = base.Name, base.Kernel
	st.OwnMemory, st.FromSnapshot = tmpl == "", tmpl != ""

	sb := &sandbox{id: spec.ID, dir: m.cfg.Layout.Sandbox(spec.ID), log: m.log.With(slog.String(attrSandboxID, spec.ID))}
	m.mu.Lock()
	if _, exists := m.sandboxes[spec.ID]; exists {
		m.mu.Unlock()
		return net, wrenn.Errorf(wrenn.EConflict, "sandbox already exists on this host")
	}
	m.sandboxes[spec.ID] = sb
	m.mu.Unlock()

	sb.op.Lock()
	defer sb.op.Unlock()
	defer func() {
		if err != nil {
			m.undoStart(ctx, sb)
			m.mu.Lock()
			delete(m.sandboxes, spec.ID)
			m.mu.Unlock()
		}
	}()
	start := time.Now()
	if tmpl != "" {
		// Whether this create takes a pool member or not, the pool keeps
		// one ready for the next: of a base always, of a snapshot template
		// once it is used.
		key := poolKey{team: spec.TemplateTeamID, name: spec.Template}
		defer func() {
			if err == nil {
				m.refill(key)
			}
		}()
		if net, ok := m.claim(ctx, sb, &st, key, tmpl); ok {
			sb.log.Info("sandbox started", slog.String("template", spec.Template), slog.Bool("restored", true),
				slog.Bool("from_pool", true), slog.String("run_dir", sb.dir.Path()), slog.Int(attrPID, st.PID),
				slog.Duration("took", time.Since(start)))
			return net, nil
		}
	}
	if net, err = m.start(ctx, sb, &st, tmpl, base); err != nil {
		return net, err
	}
	sb.log.Info("sandbox started", slog.String("template", spec.Template), slog.Bool("restored", tmpl != ""),
		slog.Int(attrPID, st.PID), slog.Duration("took", time.Since(start)))
	return net, nil
}

// start makes sb's run directory and root disk and launches its VM:
// restoring the template tmpl, or booting base if tmpl is "". On failure
// the caller runs undoStart. Call with sb.op held.
func (m *Manager) start(ctx context.Context, sb *sandbox, st *state, tmpl layout.TemplateDir, base Base) (net wrenn.SandboxNet, err error) {
	dir := sb.dir
	if err := os.MkdirAll(m.cfg.Layout.Sandboxes(), 0o700); err != nil {
		return net, fmt.Errorf("create sandboxes dir: %w", err)
	}
	if err := os.Mkdir(dir.Path(), 0o700); err != nil {
		return net, fmt.Errorf("create run dir: %w", err)
	}
	incoming := ""
	if tmpl == "" {
		err = disk.Overlay(ctx, base.RootFS, "raw", dir.RootDisk())
	} else {
		// Links, not paths: the template may be deleted while this runs.
		if err := linkOrCopy(tmpl.Memory(), dir.TemplateMemory()); err != nil {
			return net, err
		}
		if err := linkOrCopy(tmpl.Disk(), dir.TemplateDisk()); err != nil {
			return net, err
		}
		err = disk.Overlay(ctx, dir.TemplateDisk(), "qcow2", dir.RootDisk())
		incoming = tmpl.VMState()
	}
	if err != nil {
		return net, err
	}
	return m.launch(ctx, sb, st, incoming, false)
}

// undoStart frees what a failed start acquired and removes the run
// directory it made.
func (m *Manager) undoStart(ctx context.Context, sb *sandbox) {
	bg := context.WithoutCancel(ctx)
	if err := errors.Join(sb.release.run(bg), removeRunDir(sb.dir)); err != nil {
		sb.log.Error("undo failed create", slog.Any(attrError, err))
	}
}

// launch starts the VM of sb as st describes, from the device state file
// incoming if not empty (withRAM: holding the RAM), with a new network
// slot; waits for its guest agent, gives the guest its identity and
// records st. What it acquires goes on sb.release. Call with sb.op held.
func (m *Manager) launch(ctx context.Context, sb *sandbox, st *state, incoming string, withRAM bool) (net wrenn.SandboxNet, err error) {
	slot, err := m.cfg.Network.Acquire(ctx)
	if err != nil {
		return net, fmt.Errorf("acquire network slot: %w", err)
	}
	sb.release.addBackground(func(ctx context.Context) error { return m.cfg.Network.Release(ctx, slot) })
	st.Slot = slot.Index

	tap, err := slot.OpenTap()
	if err != nil {
		return net, fmt.Errorf("open tap: %w", err)
	}
	defer tap.Close() // QEMU holds its own copy
	c := m.vmConfig(*st, sb.dir)
	c.KernelArgs = kernelArgs(slot, st.ID)
	c.Tap, c.Incoming, c.IncomingHasRAM = tap, incoming, withRAM
	t0 := time.Now()
	vm, err := m.cfg.Driver.Start(ctx, c)
	if err != nil {
		return net, fmt.Errorf("start vm: %w", err)
	}
	sb.release.add(vm.Stop)
	st.PID = vm.PID()

	t1 := time.Now()
	client, err := m.connectGuest(ctx, sb.dir, vm)
	if err != nil {
		return net, err
	}
	sb.release.add(func(context.Context) error { return client.Close() })
	t2 := time.Now()
	if err := m.initGuest(ctx, client, st.ID); err != nil {
		return net, err
	}
	sb.log.Debug("vm launched", slog.Duration("start", t1.Sub(t0)), slog.Duration("connect", t2.Sub(t1)),
		slog.Duration("init", time.Since(t2)))
	if err := writeState(sb.dir, *st); err != nil {
		return net, err
	}
	sb.mu.Lock()
	sb.vm, sb.envd, sb.st, sb.paused = vm, client, *st, false
	sb.mu.Unlock()
	go m.watch(sb, vm)
	return wrenn.SandboxNet{GuestIP: slot.GuestIP.String(), HostIP: slot.HostIP.String()}, nil
}

// vmConfig is the VM of st; Tap, KernelArgs and Incoming are the caller's.
func (m *Manager) vmConfig(st state, dir layout.SandboxDir) vmm.Config {
	c := vmm.Config{
		ID: st.ID, RunDir: dir.Path(), Kernel: st.Kernel,
		RootDisk: dir.RootDisk(), RootDiskFormat: "qcow2",
		VCPUs: st.VCPUs, MemoryMB: st.MemoryMB, MAC: guestMAC,
		AgentSocket: dir.EnvdSocket(), ConsoleLog: dir.ConsoleLog(),
		MemoryFile: dir.Memory(), MemoryShared: true,
	}
	if !st.OwnMemory {
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

// connectGuest connects to the guest agent's channel and waits until the
// guest agent answers, the VM dies, or the boot timeout passes. A session
// that breaks while the guest boots is dialled afresh.
func (m *Manager) connectGuest(ctx context.Context, dir layout.SandboxDir, vm vmm.VM) (*envd.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.BootTimeout)
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
			if client, err = envd.NewClient(conn, m.log); err == nil {
				if err = client.Ping(ctx); err == nil {
					return client, nil
				}
				client.Close()
			} else {
				conn.Close()
			}
		}
		last = err
		select {
		case <-vm.Done():
			return nil, errors.New("vm exited before its guest agent answered")
		case <-ctx.Done():
			return nil, fmt.Errorf("guest agent did not answer within %s: %w", m.cfg.BootTimeout, last)
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
