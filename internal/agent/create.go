package agent

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
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
// agent can adopt the VM.
type state struct {
	ID        string    `json:"id"`
	TeamID    string    `json:"team_id"`
	Template  string    `json:"template"`
	VCPUs     int       `json:"vcpus"`
	MemoryMB  int       `json:"memory_mb"`
	Kernel    string    `json:"kernel"`
	Driver    string    `json:"driver"`
	PID       int       `json:"pid"`
	Slot      int       `json:"slot"`
	CreatedAt time.Time `json:"created_at"`
}

func writeState(dir layout.SandboxDir, st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := dir.State() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp, dir.State()); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// CreateSandbox boots a sandbox and returns once its guest agent answers.
// On any failure everything acquired so far is released.
func (m *Manager) CreateSandbox(ctx context.Context, spec wrenn.SandboxSpec) (net wrenn.SandboxNet, err error) {
	base, ok := m.bases[spec.Template]
	if !ok || spec.TemplateTeamID != "" {
		return net, wrenn.Errorf(wrenn.EInvalid, "template %q is not available on this host", spec.Template)
	}
	sb := &sandbox{id: spec.ID, log: m.log.With(slog.String(attrSandboxID, spec.ID))}
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
			if cerr := sb.release.run(context.WithoutCancel(ctx)); cerr != nil {
				sb.log.Error("undo failed create", slog.Any(attrError, cerr))
			}
			m.mu.Lock()
			delete(m.sandboxes, spec.ID)
			m.mu.Unlock()
		}
	}()
	start := time.Now()
	dir := m.cfg.Layout.Sandbox(spec.ID)
	st := state{ID: spec.ID, TeamID: spec.TeamID, Template: base.Name, VCPUs: spec.VCPUs, MemoryMB: spec.MemoryMB,
		Kernel: base.Kernel, Driver: m.cfg.Driver.Name(), CreatedAt: m.cfg.Now().UTC()}

	if err := os.MkdirAll(m.cfg.Layout.Sandboxes(), 0o700); err != nil {
		return net, fmt.Errorf("create sandboxes dir: %w", err)
	}
	if err := os.Mkdir(dir.Path(), 0o700); err != nil {
		return net, fmt.Errorf("create run dir: %w", err)
	}
	sb.release.add(removeDir(dir.Path()))

	if err := disk.Overlay(ctx, base.RootFS, "raw", dir.RootDisk()); err != nil {
		return net, err
	}

	slot, err := m.cfg.Network.Acquire(ctx)
	if err != nil {
		return net, fmt.Errorf("acquire network slot: %w", err)
	}
	sb.release.add(func(ctx context.Context) error { return m.cfg.Network.Release(ctx, slot) })
	st.Slot = slot.Index

	vm, err := m.startVM(ctx, spec, base, dir, slot)
	if err != nil {
		return net, err
	}
	sb.release.add(vm.Stop)
	st.PID = vm.PID()

	client, err := m.connectGuest(ctx, dir, vm)
	if err != nil {
		return net, err
	}
	sb.release.add(func(context.Context) error { return client.Close() })
	if err := m.initGuest(ctx, client, spec.ID); err != nil {
		return net, err
	}
	if err := writeState(dir, st); err != nil {
		return net, err
	}
	sb.mu.Lock()
	sb.vm, sb.envd = vm, client
	sb.mu.Unlock()
	go m.watch(sb, vm)
	sb.log.Info("sandbox started", slog.String("template", base.Name), slog.Int(attrPID, vm.PID()),
		slog.Duration("took", time.Since(start)))
	return wrenn.SandboxNet{GuestIP: slot.GuestIP.String(), HostIP: slot.HostIP.String()}, nil
}

func (m *Manager) vmConfig(spec wrenn.SandboxSpec, kernel string, dir layout.SandboxDir) vmm.Config {
	return vmm.Config{
		ID: spec.ID, RunDir: dir.Path(), Kernel: kernel,
		RootDisk: dir.RootDisk(), RootDiskFormat: "qcow2",
		VCPUs: spec.VCPUs, MemoryMB: spec.MemoryMB, MAC: guestMAC,
		AgentSocket: dir.EnvdSocket(), ConsoleLog: dir.ConsoleLog(),
	}
}

func (m *Manager) startVM(ctx context.Context, spec wrenn.SandboxSpec, base Base, dir layout.SandboxDir, slot *netslot.Slot) (vmm.VM, error) {
	tap, err := slot.OpenTap()
	if err != nil {
		return nil, fmt.Errorf("open tap: %w", err)
	}
	defer tap.Close() // QEMU holds its own copy
	c := m.vmConfig(spec, base.Kernel, dir)
	c.KernelArgs = kernelArgs(slot, spec.ID)
	c.Tap = tap
	vm, err := m.cfg.Driver.Start(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("start vm: %w", err)
	}
	return vm, nil
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
