package agent

import (
	"context"
	"fmt"
	"log/slog"
)

// DestroySandbox stops the sandbox's VM and frees everything it holds.
// Destroying a sandbox this host does not hold is not an error.
func (m *Manager) DestroySandbox(ctx context.Context, id string) error {
	sb, err := m.get(id)
	if err != nil {
		return nil
	}
	sb.op.Lock()
	defer sb.op.Unlock()
	sb.mu.Lock()
	if sb.gone {
		sb.mu.Unlock()
		return nil
	}
	sb.gone = true
	sb.mu.Unlock()
	err = sb.release.run(context.WithoutCancel(ctx))
	if err == nil {
		err = removeRunDir(sb.dir)
	}
	if err != nil {
		// Leave it listed, so a retry can finish the job.
		sb.mu.Lock()
		sb.gone = false
		sb.mu.Unlock()
		return fmt.Errorf("destroy sandbox: %w", err)
	}
	m.mu.Lock()
	delete(m.sandboxes, id)
	m.mu.Unlock()
	sb.log.Info("sandbox destroyed")
	return nil
}

// logErr logs a failure that has no caller to return to.
func logErr(log *slog.Logger, msg string, err error) {
	if err != nil {
		log.Error(msg, slog.Any(attrError, err))
	}
}
