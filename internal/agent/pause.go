package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/wrennhq/wrenn"
)

var _ wrenn.Snapshotter = (*Manager)(nil)

// A paused sandbox is its run directory: the root disk overlay, the guest
// RAM file and the device state a VM.Snapshot wrote.

// PauseSandbox writes a running sandbox's state to its run directory and
// frees its VM and network slot. If the snapshot fails the sandbox runs on.
func (m *Manager) PauseSandbox(ctx context.Context, id string) error {
	sb, err := m.lock(id)
	if err != nil {
		return err
	}
	defer sb.op.Unlock()
	mach, rec, err := sb.begin(lcPausing)
	if err != nil {
		return err
	}
	start := time.Now()
	// RAM a private mapping holds is split into a memory file of the
	// sandbox's own, which the resume then maps lazily.
	if err := m.freeze(ctx, sb, mach, rec.OwnMemory, sb.dir.VMState(), sb.dir.Memory()); err != nil {
		return fmt.Errorf("pause: %w", err)
	}
	wasOwn := rec.OwnMemory
	rec.Paused, rec.PID, rec.Slot, rec.OwnMemory = true, 0, 0, true
	if err := writeRecord(sb.dir, rec); err != nil {
		// The guest is stopped and cannot be recorded as paused: end it.
		m.fail(sb)
		return fmt.Errorf("pause: %w", err)
	}
	// The VM is gone once this returns; its network slot's teardown need
	// not hold up the answer.
	if err := mach.release.runThen(context.WithoutCancel(ctx), m.bg.later(sb.log)); err != nil {
		sb.log.Error("free resources of paused sandbox", slog.Any(attrError, err))
	}
	sb.mu.Lock()
	sb.mach, sb.rec = nil, rec
	sb.moveLocked(lcPaused)
	sb.mu.Unlock()
	if !wasOwn {
		logErr(sb.log, "drop template memory link", os.Remove(sb.dir.TemplateMemory()))
	}
	// What was sampled while it ran is kept with it (sampler.go).
	logErr(sb.log, "save metrics", m.metrics.save(sb.id, sb.dir))
	if m.store() != nil {
		// With a shared store it goes there, flushed (travel.go).
		m.toStore(ctx, sb)
	} else {
		// The VM has quit: its disk overlay is whole in the page cache.
		m.bg.persist(sb.log, sb.dir.Memory(), sb.dir.RootDisk(), sb.dir.State(), sb.dir.Metrics(), sb.dir.Path())
	}
	sb.log.Info("sandbox paused", slog.Duration("took", time.Since(start)))
	return nil
}

// freeze ends the guest agent's session and snapshots the VM into path
// and, for RAM that is not the sandbox's own shared file (own), memory:
// restored, the guest waits for a new host's hello rather than finding out
// that its old session is gone. If the snapshot fails the guest runs on
// with a new session and sb is running again (or, if even that fails, sb
// has failed). Call with sb.op held, sb pausing or snapshotting.
func (m *Manager) freeze(ctx context.Context, sb *sandbox, mach *machine, own bool, path, memory string) error {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := mach.envd.Detach(dctx); err != nil {
		sb.log.Debug("detach guest agent", slog.Any(attrError, err))
	}
	cancel()
	if own {
		memory = "" // the RAM is that file already
	}
	err := mach.vm.Snapshot(ctx, path, memory)
	if err == nil {
		return nil
	}
	if memory != "" {
		if rerr := os.Remove(memory); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			sb.log.Warn("remove memory of failed snapshot", slog.Any(attrError, rerr))
		}
	}
	c, cerr := connectGuest(context.WithoutCancel(ctx), sb.dir, mach.vm, m.cfg.BootTimeout, m.log)
	if cerr != nil {
		m.fail(sb)
		return errors.Join(err, cerr)
	}
	sb.mu.Lock()
	mach.envd = c
	sb.moveLocked(lcRunning)
	sb.mu.Unlock()
	return err
}

// ResumeSandbox restores a paused sandbox in a new VM with a new network
// slot. If the VM cannot be started the sandbox stays paused; if it fails
// once its guest ran, the sandbox has moved on from its snapshot and fails.
func (m *Manager) ResumeSandbox(ctx context.Context, spec wrenn.SandboxSpec) (_ wrenn.SandboxNet, err error) {
	// With a shared store, a sandbox paused on any host of it (travel.go).
	if err := m.fromStore(spec.ID); err != nil {
		return wrenn.SandboxNet{}, err
	}
	sb, err := m.lock(spec.ID)
	if err != nil {
		return wrenn.SandboxNet{}, err
	}
	defer sb.op.Unlock()
	defer func() {
		if err != nil {
			m.toStore(ctx, sb) // still paused: back for any host to resume
		}
	}()
	paused, err := m.beginResume(sb)
	if err != nil {
		return wrenn.SandboxNet{}, err
	}
	start := time.Now()
	resuming := paused
	resuming.Resuming = true
	if err := writeRecord(sb.dir, resuming); err != nil {
		sb.move(lcPaused)
		return wrenn.SandboxNet{}, fmt.Errorf("resume: %w", err)
	}
	rec := paused
	// A private-memory snapshot holds the RAM: load it into a file of its own.
	rec.Paused, rec.OwnMemory = false, true
	rec.Network = &spec.Network // the control plane's record is the one kept
	mach, err := m.launch(ctx, sb.dir, &rec, sb.dir.VMState(), !paused.OwnMemory)
	if err != nil {
		if rec.PID != 0 {
			// The guest ran: its memory and disk are no longer the snapshot's.
			m.fail(sb)
			return wrenn.SandboxNet{}, fmt.Errorf("resume: %w", err)
		}
		if !paused.OwnMemory {
			logErr(sb.log, "remove memory of failed resume", os.Remove(sb.dir.Memory()))
		}
		logErr(sb.log, "record sandbox paused again", writeRecord(sb.dir, paused))
		sb.move(lcPaused)
		return wrenn.SandboxNet{}, fmt.Errorf("resume: %w", err)
	}
	if !paused.OwnMemory {
		// The RAM is in the sandbox's own file now.
		logErr(sb.log, "drop template memory link", os.Remove(sb.dir.TemplateMemory()))
	}
	sb.run(mach, rec, lcRunning)
	go m.watch(sb, mach)
	sb.log.Info("sandbox resumed", slog.Int(attrPID, rec.PID), slog.Duration("took", time.Since(start)))
	return mach.net, nil
}
