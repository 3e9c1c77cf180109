package main

import (
	"context"

	"github.com/wrennhq/wrenn/internal/fleet"
)

// Shared stores (issue 13): fleetRouting is also control.Stores, so that
// paused sandboxes and snapshot templates kept in an agent's shared store
// (WRENN_SHARED_DIR) go to any host of that store. A joined host's store
// is recorded each time the router dials its agent (placement.go); the
// control plane's own agent's is what it reported at start.

// setLocalStore records the shared store of the control plane's own agent.
func (f *fleetRouting) setLocalStore(id string) {
	f.localStore = id
	f.placer.SetLocalStore(id)
}

func (f *fleetRouting) HostStore(ctx context.Context, hostID string) (string, error) {
	if f.localID != "" && hostID == f.localID {
		return f.localStore, nil
	}
	return f.db.HostStore(ctx, hostID)
}

func (f *fleetRouting) PlaceInStore(ctx context.Context, storeID, teamID string, tags []string, vcpus, memoryMB int, exclude []string) (string, error) {
	return f.placer.Place(ctx, fleet.PlaceRequest{TeamID: teamID, Tags: tags, VCPUs: vcpus, MemoryMB: memoryMB, Exclude: exclude, Store: storeID})
}

func (f *fleetRouting) TemplateStore(ctx context.Context, teamID, name string) (string, error) {
	return f.db.TemplateStore(ctx, teamID, name)
}

func (f *fleetRouting) SetTemplateStore(ctx context.Context, teamID, name, storeID string) error {
	return f.db.SetTemplateStore(ctx, teamID, name, storeID)
}
