package agent

import (
	"context"
	"fmt"

	"github.com/wrennhq/wrenn"
)

// DestroySandbox stops the sandbox's VM and frees everything it holds.
// Destroying a sandbox this host does not hold is not an error. If a step
// fails the sandbox is left failed, holding what that step could not free,
// and a retry runs what is left.
func (m *Manager) DestroySandbox(ctx context.Context, id string) error {
	sb, err := m.lock(id)
	if wrenn.ErrorCode(err) == wrenn.ENotFound {
		return m.destroyStored(id) // paused in the shared store, if anywhere
	}
	if err != nil {
		return err
	}
	defer sb.op.Unlock()
	return m.destroy(ctx, sb)
}

// destroy tears sb down. Call with sb.op held.
func (m *Manager) destroy(ctx context.Context, sb *sandbox) error {
	if sb.lifecycle() == lcGone {
		return nil
	}
	mach, _, err := sb.begin(lcDestroying)
	if err != nil {
		return err
	}
	ctx = context.WithoutCancel(ctx)
	if mach != nil {
		if err := mach.release.run(ctx); err != nil {
			// The VM may still run: keep the machine, and the run
			// directory it uses, for the retry.
			sb.move(lcFailed)
			return fmt.Errorf("destroy sandbox: %w", err)
		}
		sb.mu.Lock()
		sb.mach = nil
		sb.mu.Unlock()
	}
	if err := removeRunDir(sb.dir); err != nil {
		sb.move(lcFailed)
		return fmt.Errorf("destroy sandbox: %w", err)
	}
	sb.move(lcGone)
	m.forget(sb)
	sb.log.Info("sandbox destroyed")
	return nil
}
