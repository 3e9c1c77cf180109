package agent

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/wrennhq/wrenn"
)

// How the Manager uses the shared store (shared.go), when it has one.

// openStore opens the shared store the layout names, if any, and puts
// right what this host's earlier agent left half-done there. Adopt calls
// it once the run directories are adopted.
func (m *Manager) openStore() error {
	if m.cfg.Layout.Shared == "" {
		return nil
	}
	s, err := openShared(m.cfg.Layout.Shared, m.cfg.HostID, m.log)
	if err != nil {
		return err
	}
	s.cleanShared(m.cfg.Layout)
	m.mu.Lock()
	m.shared = s
	m.mu.Unlock()
	m.log.Info("paused sandboxes and snapshot templates are kept in a shared store",
		slog.String("dir", s.dir.Path()), slog.String("store_id", s.id))
	// A paused sandbox in a run directory here is one whose move to the
	// store an earlier agent did not finish.
	for _, sb := range m.all() {
		sb.op.Lock()
		if sb.lifecycle() == lcPaused {
			m.toStore(context.Background(), sb)
		}
		sb.op.Unlock()
	}
	return nil
}

// StoreID is the identity of the shared store this agent keeps paused
// sandboxes and templates in, or "" for none.
func (m *Manager) StoreID() string {
	if s := m.store(); s != nil {
		return s.id
	}
	return ""
}

func (m *Manager) store() *sharedStore {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.shared
}

// toStore moves the paused sandbox sb into the shared store and forgets
// it; if that fails it stays paused here. Call with sb.op held.
func (m *Manager) toStore(ctx context.Context, sb *sandbox) {
	s := m.store()
	if s == nil || sb.lifecycle() != lcPaused {
		return
	}
	sb.mu.Lock()
	rec := sb.rec
	sb.mu.Unlock()
	if err := s.exportPaused(context.WithoutCancel(ctx), sb.dir, rec); err != nil {
		sb.log.Error("paused sandbox stays on this host only", slog.Any(attrError, err))
		return
	}
	sb.move(lcGone)
	m.forget(sb)
	sb.log.Info("paused sandbox moved to the shared store")
}

// fromStore takes the paused sandbox id from the shared store, unless this
// agent holds it already or has no store.
func (m *Manager) fromStore(id string) error {
	s := m.store()
	if s == nil {
		return nil
	}
	if err := checkSandboxID(id); err != nil {
		return err
	}
	// Held here (paused, as the resume that follows reports it) while it
	// is taken, which a copy from another file system makes take a while:
	// operations on it wait for its lifecycle lock.
	dir := m.cfg.Layout.Sandbox(id)
	sb := newSandbox(id, dir, m.log, lcPaused)
	sb.op.Lock()
	defer sb.op.Unlock()
	m.mu.Lock()
	_, held := m.sandboxes[id]
	if !held {
		m.sandboxes[id] = sb
	}
	m.mu.Unlock()
	if held {
		return nil
	}
	err := s.importPaused(id, dir)
	if err == nil {
		var rec record
		rec, err = readRecord(dir)
		if err == nil && (!rec.Paused || rec.ID != id) {
			err = fmt.Errorf("take paused sandbox: the shared store's record of %s is not of it paused", id)
		}
		if err == nil {
			if err = s.checkShared(dir.RootDisk(), rec.Kernel); err != nil {
				err = fmt.Errorf("take paused sandbox: %w", err)
			}
		}
		if err != nil {
			logErr(m.log, "remove run dir", removeRunDir(dir))
		}
		sb.rec = rec
	}
	if err != nil {
		sb.move(lcGone)
		m.forget(sb)
		return err
	}
	sb.log.Info("paused sandbox taken from the shared store")
	return nil
}

// storePaused adds the paused sandboxes of the shared store that this agent
// does not hold to out.
func (m *Manager) storePaused(out []wrenn.SandboxState) []wrenn.SandboxState {
	s := m.store()
	if s == nil {
		return out
	}
	ids, err := s.pausedIDs()
	if err != nil {
		m.log.Warn("list the shared store's paused sandboxes", slog.Any(attrError, err))
		return out
	}
	held := make(map[string]bool, len(out))
	for _, st := range out {
		held[st.ID] = true
	}
	for _, id := range ids {
		if !held[id] {
			out = append(out, wrenn.SandboxState{ID: id, Paused: true})
		}
	}
	return out
}

// destroyStored removes the paused sandbox id from the shared store, if
// there is one.
func (m *Manager) destroyStored(id string) error {
	s := m.store()
	if s == nil {
		return nil
	}
	if err := s.removePaused(id); err != nil {
		return fmt.Errorf("destroy sandbox: %w", err)
	}
	return nil
}
