package control

import (
	"context"
	"errors"
	"log/slog"

	"github.com/wrennhq/wrenn"
)

// Shared stores (issue 13): an agent with a shared store (WRENN_SHARED_DIR)
// keeps its paused sandboxes and snapshot templates there, so that any host
// of the store can resume or start them. A Fleet that also implements
// Stores lets the Service use that: a paused sandbox of a host with a
// store resumes on any online host of the store with room (host_id then
// names the new host), a snapshot template made in a store starts
// sandboxes on any host of it, and deleting it has one host of the store
// remove its files. Paused sandboxes of a host that is unreachable resume
// elsewhere the same way: they are in the store, not on the host. Without
// Stores, or without a store, everything stays on its host as before.

// Stores is what a Fleet may know of shared stores.
type Stores interface {
	// HostStore returns the shared store of host hostID's agent; "" for
	// none.
	HostStore(ctx context.Context, hostID string) (string, error)
	// PlaceInStore is Fleet.Place among the hosts of store storeID only.
	PlaceInStore(ctx context.Context, storeID, teamID string, tags []string, vcpus, memoryMB int, exclude []string) (string, error)
	// TemplateStore and SetTemplateStore read and record the shared store
	// a team's snapshot template was made in.
	TemplateStore(ctx context.Context, teamID, name string) (string, error)
	SetTemplateStore(ctx context.Context, teamID, name, storeID string) error
}

// stores returns the fleet's Stores, or nil.
func (s *Service) stores() Stores {
	if s.fleet == nil {
		return nil
	}
	st, _ := s.fleet.(Stores)
	return st
}

// resumeSandbox has an agent resume sb: with a shared store, one placed
// among the store's hosts (another when one refuses as full); else the
// agent of its host. It returns the host that resumed it.
func (s *Service) resumeSandbox(ctx context.Context, sb *wrenn.Sandbox, spec wrenn.SandboxSpec) (string, wrenn.SandboxNet, error) {
	st := s.stores()
	store := ""
	if st != nil {
		var err error
		if store, err = st.HostStore(ctx, sb.HostID); err != nil {
			return "", wrenn.SandboxNet{}, err
		}
	}
	if store == "" {
		agent, err := s.snapshotterFor(ctx, sb.HostID)
		if err != nil {
			return "", wrenn.SandboxNet{}, err
		}
		net, err := agent.ResumeSandbox(ctx, spec)
		return sb.HostID, net, err
	}
	// A host that is full, does not answer (lost, and not yet marked
	// unreachable) or fails is passed over for the next. Trying another
	// is safe: of agents taking a sandbox from the store, one does; the
	// others find it gone; and an agent that cannot resume it puts it back.
	var refused []string
	var last error
	for {
		hostID, err := st.PlaceInStore(ctx, store, sb.TeamID, nil, sb.VCPUs, sb.MemoryMB, refused)
		if err != nil {
			if last != nil && wrenn.ErrorCode(err) == wrenn.EHostFull {
				err = last // what the hosts tried said
			}
			return "", wrenn.SandboxNet{}, err
		}
		agent, err := s.snapshotterFor(ctx, hostID)
		if err == nil && hostID != sb.HostID {
			// The record names the host doing the resume while it does, as
			// that host's reconciler expects (it holds the sandbox paused
			// meanwhile, as its own host would).
			rec := *sb
			rec.HostID = hostID
			err = s.sandboxes.UpdateSandbox(context.WithoutCancel(ctx), &rec)
		}
		var net wrenn.SandboxNet
		if err == nil {
			net, err = agent.ResumeSandbox(ctx, spec)
		}
		if err == nil {
			if hostID != sb.HostID {
				s.log.InfoContext(ctx, "paused sandbox resumed on another host of its shared store", slog.String(attrSandboxID, sb.ID),
					slog.String("from_host_id", sb.HostID), slog.String("host_id", hostID))
			}
			return hostID, net, nil
		}
		if wrenn.ErrorCode(err) == wrenn.ENotFound && hostID != sb.HostID {
			// Not in the store: its own host kept it (its move to the
			// store failed), if anyone did.
			if agent, aerr := s.snapshotterFor(ctx, sb.HostID); aerr == nil {
				if net, rerr := agent.ResumeSandbox(ctx, spec); rerr == nil {
					return sb.HostID, net, nil
				}
			}
			return "", wrenn.SandboxNet{}, err
		}
		if !passOver(err) || len(refused)+1 >= placeAttempts || ctx.Err() != nil {
			return "", wrenn.SandboxNet{}, err
		}
		s.log.InfoContext(ctx, "a host of the shared store cannot resume the sandbox; trying another", slog.String(attrSandboxID, sb.ID),
			slog.String("host_id", hostID), slog.Any(attrError, err))
		refused, last = append(refused, hostID), err
	}
}

// checkResumable is what must hold before a resume moves the record: a
// sandbox on its host alone needs that host's agent to answer; one in a
// shared store has a host of the store placed once the record has moved
// (resumeSandbox).
func (s *Service) checkResumable(ctx context.Context, sb *wrenn.Sandbox) error {
	if st := s.stores(); st != nil {
		store, err := st.HostStore(ctx, sb.HostID)
		if err != nil || store != "" {
			return err
		}
	}
	_, err := s.snapshotterFor(ctx, sb.HostID)
	return err
}

// templateStore is the shared store a snapshot template is kept in; ""
// for a base template, none, or no Stores.
func (s *Service) templateStore(ctx context.Context, t *wrenn.Template) (string, error) {
	st := s.stores()
	if st == nil || t.Type != wrenn.TemplateSnapshot {
		return "", nil
	}
	return st.TemplateStore(ctx, t.TeamID, t.Name)
}

// placeCreate is place, among the hosts of store if it is set.
func (s *Service) placeCreate(ctx context.Context, teamID string, p CreateParams, exclude []string, store string) (string, wrenn.Agent, error) {
	if store == "" {
		return s.place(ctx, teamID, p, exclude)
	}
	id, err := s.stores().PlaceInStore(ctx, store, teamID, p.HostTags, p.VCPUs, p.MemoryMB, exclude)
	if err != nil {
		return "", nil, err
	}
	a, err := s.agentFor(ctx, id)
	return id, a, err
}

// recordTemplateStore records that template t, made on host hostID, is in
// that host's shared store, if it has one. A failure is logged: the
// template then starts sandboxes where placement puts them, as before.
func (s *Service) recordTemplateStore(ctx context.Context, t *wrenn.Template, hostID string) {
	st := s.stores()
	if st == nil {
		return
	}
	store, err := st.HostStore(ctx, hostID)
	if err == nil {
		err = st.SetTemplateStore(ctx, t.TeamID, t.Name, store)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "record the shared store of a snapshot template", slog.String(attrTemplate, t.Name), slog.Any(attrError, err))
	}
}

// storeSnapshotter returns the agent of a host of the shared store that
// keeps snapshot template t, or nil if it is kept in none.
func (s *Service) storeSnapshotter(ctx context.Context, t *wrenn.Template) (wrenn.Snapshotter, error) {
	store, err := s.templateStore(ctx, t)
	if err != nil || store == "" {
		return nil, err
	}
	hostID, err := s.stores().PlaceInStore(ctx, store, t.TeamID, nil, 0, 0, nil)
	if err != nil {
		return nil, err
	}
	return s.snapshotterFor(ctx, hostID)
}

// destroyAgent is the agent to destroy sb with: its host's, or, for a
// paused sandbox kept in a shared store whose host cannot be reached (lost,
// say), one of the store's hosts, which removes it from the store.
func (s *Service) destroyAgent(ctx context.Context, sb *wrenn.Sandbox) (wrenn.Agent, error) {
	agent, err := s.agentFor(ctx, sb.HostID)
	st := s.stores()
	if err == nil || sb.Status != wrenn.StatusPaused || st == nil {
		return agent, err
	}
	store, serr := st.HostStore(ctx, sb.HostID)
	if serr != nil || store == "" {
		return nil, err
	}
	hostID, perr := st.PlaceInStore(ctx, store, sb.TeamID, nil, 0, 0, []string{sb.HostID})
	if perr != nil {
		return nil, err
	}
	return s.agentFor(ctx, hostID)
}

// passOver reports whether a resume that failed with err may be tried on
// another host of the store: the host was full, unreachable, or failed
// (a transport or agent fault, not an answer about the sandbox).
func passOver(err error) bool {
	e, ok := errors.AsType[*wrenn.Error](err)
	return !ok || e.Code == wrenn.EHostFull || e.Code == wrenn.EHostAgent
}
