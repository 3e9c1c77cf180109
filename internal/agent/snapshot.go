package agent

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/disk"
	"github.com/wrennhq/wrenn/internal/layout"
	"github.com/wrennhq/wrenn/internal/vmm"
)

var _ wrenn.Snapshotter = (*Manager)(nil)

// A paused sandbox is its run directory: the root disk overlay, the guest
// RAM file and the device state a VM.Snapshot wrote. A snapshot template
// is the same three, moved into the template's directory, and a
// meta.json; sandboxes made from it hard-link its memory and disk and
// restore its device state, mapping the memory privately so they share
// the pages none of them has written.

// templateMeta is a snapshot template's meta.json.
type templateMeta struct {
	Base      string    `json:"base"`
	Kernel    string    `json:"kernel"`
	VCPUs     int       `json:"vcpus"`
	MemoryMB  int       `json:"memory_mb"`
	CreatedAt time.Time `json:"created_at"`
}

func readTemplateMeta(d layout.TemplateDir) (templateMeta, error) {
	var meta templateMeta
	b, err := os.ReadFile(d.Meta())
	if errors.Is(err, fs.ErrNotExist) {
		return meta, wrenn.Errorf(wrenn.EInvalid, "template %q is not available on this host", filepath.Base(d.Path()))
	}
	if err != nil {
		return meta, fmt.Errorf("read template: %w", err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return meta, fmt.Errorf("read template %s: %w", d.Meta(), err)
	}
	return meta, nil
}

// PauseSandbox writes a running sandbox's state to its run directory and
// frees its VM and network slot. If the snapshot fails the sandbox runs on.
func (m *Manager) PauseSandbox(ctx context.Context, id string) error {
	sb, vm, st, err := m.lockRunning(id)
	if err != nil {
		return err
	}
	defer sb.op.Unlock()
	start := time.Now()
	// RAM a private mapping holds is split into a memory file of the
	// sandbox's own, which the resume then maps lazily.
	if err := m.freeze(ctx, sb, vm, sb.dir.VMState(), sb.dir.Memory()); err != nil {
		return fmt.Errorf("pause: %w", err)
	}
	wasOwn := st.OwnMemory
	st.Paused, st.PID, st.Slot, st.OwnMemory = true, 0, 0, true
	if err := writeState(sb.dir, st); err != nil {
		// The guest is stopped and cannot be recorded as paused: end it.
		m.kill(sb)
		return fmt.Errorf("pause: %w", err)
	}
	sb.mu.Lock()
	sb.vm, sb.envd, sb.st, sb.paused = nil, nil, st, true
	sb.mu.Unlock()
	// The VM is gone once this returns; its network slot's teardown need
	// not hold up the answer.
	if err := sb.release.runThen(context.WithoutCancel(ctx), m.later(sb.log)); err != nil {
		sb.log.Error("free resources of paused sandbox", slog.Any(attrError, err))
	}
	if !wasOwn {
		logErr(sb.log, "drop template memory link", os.Remove(sb.dir.TemplateMemory()))
	}
	// The VM has quit: its disk overlay is whole in the page cache.
	m.persist(sb.log, sb.dir.Memory(), sb.dir.RootDisk(), sb.dir.State(), sb.dir.Path())
	sb.log.Info("sandbox paused", slog.Duration("took", time.Since(start)))
	return nil
}

// lockRunning takes the lifecycle lock of a running sandbox and returns
// it with its VM and record; the caller unlocks sb.op.
func (m *Manager) lockRunning(id string) (*sandbox, vmm.VM, state, error) {
	sb, err := m.get(id)
	if err != nil {
		return nil, nil, state{}, err
	}
	sb.op.Lock()
	vm, st, err := sb.running()
	if err != nil {
		sb.op.Unlock()
		return nil, nil, state{}, err
	}
	return sb, vm, st, nil
}

// freeze ends the guest agent's session and snapshots the VM into path
// and, for RAM that is not the sandbox's own shared file, memory:
// restored, the guest waits for a new host's hello rather than finding out
// that its old session is gone. If the snapshot fails the guest runs on
// with a new session (or, if even that fails, the sandbox ends). Call with
// sb.op held.
func (m *Manager) freeze(ctx context.Context, sb *sandbox, vm vmm.VM, path, memory string) error {
	sb.mu.Lock()
	client := sb.envd
	sb.mu.Unlock()
	if client != nil {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := client.Detach(dctx); err != nil {
			sb.log.Debug("detach guest agent", slog.Any(attrError, err))
		}
		cancel()
	}
	sb.mu.Lock()
	own := sb.st.OwnMemory
	sb.mu.Unlock()
	if own {
		memory = "" // the RAM is that file already
	}
	err := vm.Snapshot(ctx, path, memory)
	if err == nil {
		return nil
	}
	if memory != "" {
		os.Remove(memory)
	}
	c, cerr := m.connectGuest(context.WithoutCancel(ctx), sb.dir, vm)
	if cerr != nil {
		m.kill(sb)
		return errors.Join(err, cerr)
	}
	sb.mu.Lock()
	sb.envd = c
	sb.mu.Unlock()
	sb.release.add(func(context.Context) error { return c.Close() })
	return err
}

// kill ends a sandbox that cannot go on, as if its VM had died: resources
// freed, run directory removed, listed as not running. Call with sb.op held.
func (m *Manager) kill(sb *sandbox) {
	sb.mu.Lock()
	sb.dead, sb.vm, sb.envd = true, nil, nil
	sb.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logErr(sb.log, "free resources", sb.release.run(ctx))
	logErr(sb.log, "remove run dir", os.RemoveAll(sb.dir.Path()))
}

// ResumeSandbox restores a paused sandbox in a new VM with a new network
// slot. If the VM cannot be started the sandbox stays paused; if it fails
// once its guest ran, the sandbox has moved on from its snapshot and ends.
func (m *Manager) ResumeSandbox(ctx context.Context, spec wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
	sb, err := m.get(spec.ID)
	if err != nil {
		return wrenn.SandboxNet{}, err
	}
	sb.op.Lock()
	defer sb.op.Unlock()
	sb.mu.Lock()
	paused, st := sb.paused && !sb.gone, sb.st
	sb.mu.Unlock()
	if !paused {
		return wrenn.SandboxNet{}, wrenn.Errorf(wrenn.EConflict, "sandbox is not paused")
	}
	start := time.Now()
	resuming := st
	resuming.Resuming = true
	if err := writeState(sb.dir, resuming); err != nil {
		return wrenn.SandboxNet{}, fmt.Errorf("resume: %w", err)
	}
	wasOwn := st.OwnMemory
	st.Paused, st.OwnMemory = false, true // a private-memory snapshot holds the RAM: load it into a file of its own
	net, err := m.launch(ctx, sb, &st, sb.dir.VMState(), !wasOwn)
	if err != nil {
		if st.PID != 0 {
			// The guest ran: its memory and disk are no longer the snapshot's.
			m.kill(sb)
			return net, fmt.Errorf("resume: %w", err)
		}
		logErr(sb.log, "undo failed resume", sb.release.run(context.WithoutCancel(ctx)))
		if !wasOwn {
			os.Remove(sb.dir.Memory())
		}
		sb.mu.Lock()
		paused := sb.st
		sb.mu.Unlock()
		logErr(sb.log, "record sandbox paused again", writeState(sb.dir, paused))
		return net, fmt.Errorf("resume: %w", err)
	}
	if !wasOwn {
		// The RAM is in the sandbox's own file now.
		logErr(sb.log, "drop template memory link", os.Remove(sb.dir.TemplateMemory()))
	}
	sb.log.Info("sandbox resumed", slog.Int(attrPID, st.PID), slog.Duration("took", time.Since(start)))
	return net, nil
}

// CreateSnapshot makes the running sandbox into the snapshot template t
// and ends the sandbox. If the snapshot itself fails, the sandbox runs on.
func (m *Manager) CreateSnapshot(ctx context.Context, sandboxID string, t *wrenn.Template) error {
	if err := wrenn.ValidateTemplateName(t.Name); err != nil {
		return err
	}
	if !validTeamID(t.TeamID) {
		return wrenn.Errorf(wrenn.EInvalid, "invalid team id")
	}
	start := time.Now()
	final := m.cfg.Layout.Template(t.TeamID, t.Name)
	st, err := m.snapshotTo(ctx, sandboxID, final, t.CreatedAt)
	if err != nil {
		return err
	}
	m.dropPool(t.TeamID, t.Name) // members of a template it replaced
	vcpus, mem := st.VCPUs, st.MemoryMB
	t.VCPUs, t.MemoryMB, t.SizeBytes = &vcpus, &mem, allocated(final.Path())
	m.log.Info("snapshot template created", slog.String(attrSandboxID, sandboxID), slog.String("template", t.Name),
		slog.Int64("size_bytes", t.SizeBytes), slog.Duration("took", time.Since(start)))
	return nil
}

// snapshotTo makes the running sandbox id into the template directory
// final, replacing what is there, and ends the sandbox. If the snapshot
// itself fails, the sandbox runs on.
func (m *Manager) snapshotTo(ctx context.Context, id string, final layout.TemplateDir, created time.Time) (st state, err error) {
	sb, vm, st, err := m.lockRunning(id)
	if err != nil {
		return st, err
	}
	defer sb.op.Unlock()
	if err := os.MkdirAll(filepath.Dir(final.Path()), 0o700); err != nil {
		return st, fmt.Errorf("snapshot: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(final.Path()), "."+filepath.Base(final.Path())+".tmp-")
	if err != nil {
		return st, fmt.Errorf("snapshot: %w", err)
	}
	dst := layout.TemplateDir(tmp)
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	t0 := time.Now()
	if err := m.freeze(ctx, sb, vm, dst.VMState(), dst.Memory()); err != nil {
		return st, fmt.Errorf("snapshot: %w", err)
	}
	t1 := time.Now()
	// The sandbox is consumed from here on, whatever happens.
	defer m.consume(sb)
	bg := context.WithoutCancel(ctx)
	sb.mu.Lock()
	sb.vm, sb.envd = nil, nil
	sb.mu.Unlock()
	if err := sb.release.runThen(bg, m.later(sb.log)); err != nil {
		return st, fmt.Errorf("snapshot: stop sandbox: %w", err)
	}
	if st.OwnMemory {
		if err := os.Rename(sb.dir.Memory(), dst.Memory()); err != nil {
			return st, fmt.Errorf("snapshot: memory: %w", err)
		}
	}
	t2 := time.Now()
	base, ok := m.bases[st.Base]
	switch {
	case !st.FromSnapshot:
		err = os.Rename(sb.dir.RootDisk(), dst.Disk()) // already an overlay of the base alone
	case !ok:
		err = fmt.Errorf("base %q is gone from this host", st.Base)
	default:
		err = disk.Flatten(bg, sb.dir.RootDisk(), base.RootFS, "raw", dst.Disk())
	}
	if err != nil {
		return st, fmt.Errorf("snapshot: disk: %w", err)
	}
	sb.log.Debug("snapshot steps", slog.Duration("snapshot", t1.Sub(t0)), slog.Duration("memory", t2.Sub(t1)),
		slog.Duration("disk", time.Since(t2)))
	meta := templateMeta{Base: st.Base, Kernel: st.Kernel, VCPUs: st.VCPUs, MemoryMB: st.MemoryMB, CreatedAt: created}
	if err := writeJSONFile(dst.Meta(), meta); err != nil {
		return st, fmt.Errorf("snapshot: %w", err)
	}
	if err := replaceDir(tmp, final.Path()); err != nil {
		return st, fmt.Errorf("snapshot: %w", err)
	}
	m.persist(sb.log, final.Memory(), final.Disk(), final.Meta(), final.Path(), filepath.Dir(final.Path()))
	return st, nil
}

// consume forgets a sandbox that became a template: its VM is gone and
// what is left of its run directory is removed.
func (m *Manager) consume(sb *sandbox) {
	sb.mu.Lock()
	sb.gone = true
	sb.mu.Unlock()
	logErr(sb.log, "remove run dir", os.RemoveAll(sb.dir.Path()))
	m.mu.Lock()
	delete(m.sandboxes, sb.id)
	m.mu.Unlock()
}

// replaceDir moves dir to path, replacing what is there. Sandboxes made
// from a replaced template keep their links to its files.
func replaceDir(dir, path string) error {
	err := os.Rename(dir, path)
	if err == nil || !(errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)) {
		return err
	}
	old := path + ".old-" + rand.Text()
	if err := os.Rename(path, old); err != nil {
		return err
	}
	if err := os.Rename(dir, path); err != nil {
		return errors.Join(err, os.Rename(old, path))
	}
	return os.RemoveAll(old)
}

// allocated is the disk space the files under dir take (sparse files
// count what they hold, not their length).
func allocated(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}

// DeleteSnapshot removes a snapshot template's files. Sandboxes made from
// it keep their links to them. Deleting one that is not here is not an
// error.
func (m *Manager) DeleteSnapshot(ctx context.Context, teamID, name string) error {
	if err := wrenn.ValidateTemplateName(name); err != nil {
		return err
	}
	if !validTeamID(teamID) {
		return wrenn.Errorf(wrenn.EInvalid, "invalid team id")
	}
	m.dropPool(teamID, name)
	path := m.cfg.Layout.Template(teamID, name).Path()
	// Rename first so a half-removed template is never taken for one.
	gone := filepath.Join(filepath.Dir(path), "."+name+".deleted-"+rand.Text())
	if err := os.Rename(path, gone); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete snapshot: %w", err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("delete snapshot: %w", err)
	}
	m.log.Info("snapshot template deleted", slog.String("team_id", teamID), slog.String("template", name))
	return nil
}

// validTeamID accepts what wrenn.NewID makes: it names a directory.
func validTeamID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
