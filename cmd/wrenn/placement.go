package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agent"
	"github.com/wrennhq/wrenn/internal/agentrpc"
	"github.com/wrennhq/wrenn/internal/control"
	"github.com/wrennhq/wrenn/internal/fleet"
	"github.com/wrennhq/wrenn/internal/store"
)

// Sandboxes on joined hosts (issue 13): with a fleet listener the control
// plane places each create (fleet.Placer, internal/fleet/placement.go) and
// reaches each sandbox's host (fleet.Router). The agent of --agent, if
// any, is one host of the fleet, sized as this machine: an agent in this
// process (--agent local) admits what its settings (WRENN_CPU_OVERCOMMIT,
// ...) make of it; one at an address is assumed to admit as agents do by
// default. Without a fleet listener nothing here runs: the control plane
// drives its one agent.

// fleetRouting is control.Fleet over a Placer and a Router.
type fleetRouting struct {
	placer *fleet.Placer
	router *fleet.Router
	db     *store.DB
	log    *slog.Logger
	// The control plane's own agent and its shared store (travel.go).
	localID, localStore string
}

func (f *fleetRouting) Agent(ctx context.Context, hostID string) (wrenn.Agent, error) {
	return f.router.Agent(ctx, hostID)
}

func (f *fleetRouting) Place(ctx context.Context, teamID string, tags []string, vcpus, memoryMB int, exclude []string) (string, error) {
	return f.placer.Place(ctx, fleet.PlaceRequest{TeamID: teamID, Tags: tags, VCPUs: vcpus, MemoryMB: memoryMB, Exclude: exclude})
}

// hostDialInterval is how often the control plane dials joined hosts it
// has not dialled yet, to learn their base templates.
const hostDialInterval = 2 * time.Second

// newFleetRouting returns the fleet's placement and routing. localID is
// the ID of the control plane's own agent ("" for none); localAdmission,
// if not nil, is that agent's admission (an agent in this process), whose
// capacity placement counts its sandboxes against; nil assumes the
// default admission of this machine.
func newFleetRouting(link *fleet.Link, db *store.DB, localID string, localAdmission *agent.AdmissionConfig, now func() time.Time, log *slog.Logger) *fleetRouting {
	var local *fleet.LocalHost
	if localID != "" {
		m := agent.MachineResources()
		mem, err := m.MemoryMB()
		if err != nil {
			log.Warn("measure this machine's memory for placement", slog.Any("error", err))
		}
		local = &fleet.LocalHost{ID: localID, CPUCores: m.Cores(), MemoryMB: mem}
		if localAdmission != nil {
			if c, err := localAdmission.Capacity(); err != nil {
				log.Warn("measure this host's capacity for placement", slog.Any("error", err))
			} else {
				local.Capacity = &c
			}
		}
	}
	router := fleet.NewRouter(link, log, func(ctx context.Context, hostID string, c *agentrpc.Client) error {
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if err := db.SetHostStore(ctx, hostID, info.StoreID); err != nil { // travel.go
			return err
		}
		return registerBases(ctx, info, db, now)
	})
	return &fleetRouting{placer: fleet.NewPlacer(fleet.PlacerConfig{Store: db, Local: local, Stores: db}), router: router, db: db, log: log,
		localID: localID}
}

// run dials, until ctx ends, every online host it has not yet, which
// registers the base templates the host's agent has (so that a fleet of
// joined hosts alone, --agent none, has templates to create from), and
// starts a reconciler for each host it meets (reconcile(ctx, hostID,
// lister) runs it until its ctx ends, which it does when the host is
// deleted): the sandboxes of a joined host are compared
// with what its agent holds, and their inactivity timeouts kept, as the
// one agent's are. A pass while the host cannot be reached does nothing.
func (f *fleetRouting) run(ctx context.Context, reconcile func(ctx context.Context, hostID string, h control.HostLister)) {
	t := time.NewTicker(hostDialInterval)
	defer t.Stop()
	started := map[string]context.CancelFunc{} // a reconciler's end, by host
	for {
		hosts, err := f.db.ListHosts(ctx)
		if err != nil && ctx.Err() == nil {
			f.log.Warn("list hosts to dial", slog.Any("error", err))
		}
		exists := map[string]bool{}
		for _, h := range hosts {
			exists[h.ID] = true
			if h.Status != wrenn.HostOnline || started[h.ID] != nil {
				continue
			}
			if _, err := f.router.Client(ctx, h.ID); err != nil {
				continue
			}
			rctx, cancel := context.WithCancel(ctx)
			started[h.ID] = cancel
			go reconcile(rctx, h.ID, routedHost{router: f.router, id: h.ID})
		}
		// A deleted host's reconciler ends (its sandboxes were recorded
		// stopped with it).
		for id, cancel := range started {
			if err == nil && !exists[id] {
				cancel()
				delete(started, id)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// routedHost is a joined host's agent as a reconciler sees it, reached
// through the router on every call.
type routedHost struct {
	router *fleet.Router
	id     string
}

func (h routedHost) ListSandboxes(ctx context.Context) ([]wrenn.SandboxState, error) {
	c, err := h.router.Client(ctx, h.id)
	if err != nil {
		return nil, err
	}
	return c.ListSandboxes(ctx)
}

func (h routedHost) DestroySandbox(ctx context.Context, id string) error {
	c, err := h.router.Client(ctx, h.id)
	if err != nil {
		return err
	}
	return c.DestroySandbox(ctx, id)
}

// reconcileLease names the lease of host id's reconciler ("" for the one
// agent's).
func reconcileLease(id string) string {
	if id == "" {
		return "reconcile"
	}
	return "reconcile/" + id
}

// endSandboxes ends on host hostID the VMs of the sandboxes ids (a forced
// delete of the host, fleet.Config.EndSandboxes), as far as the host can
// be reached in a short while; what it cannot end is logged.
func (f *fleetRouting) endSandboxes(ctx context.Context, hostID string, ids []string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := f.router.Client(ctx, hostID)
	if err != nil {
		f.log.WarnContext(ctx, "forced host delete: its sandboxes' VMs cannot be ended, the host cannot be reached",
			slog.String("host_id", hostID), slog.Int("sandboxes", len(ids)), slog.Any("error", err))
		return
	}
	for _, id := range ids {
		if err := c.DestroySandbox(ctx, id); err != nil {
			f.log.WarnContext(ctx, "forced host delete: end a sandbox's VM", slog.String("host_id", hostID),
				slog.String("sandbox_id", id), slog.Any("error", err))
		}
	}
}

// localAdmission is the admission of the control plane's own agent when
// it runs in this process (--agent local), for newFleetRouting; nil for
// one at an address, whose settings are its own.
func localAdmission(cfg serverConfig) *agent.AdmissionConfig {
	if cfg.Agent != agentLocal {
		return nil
	}
	return &cfg.Host.Admission
}
