package fleet_test

import (
	"strings"
	"testing"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/fleet"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// TestPlacementCapacity: a host whose agent reports its capacity is
// filled to it, above or below the default admission; one that reports
// none is filled to its cores × 4 and memory less 1 GiB; and the control
// plane's own agent to what Local says it admits.
func TestPlacementCapacity(t *testing.T) {
	t.Parallel()
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			db := storetest.MustOpen(t, engine)
			u, team := placeAccount(t, db, "a@example.com")
			// Three 2-core 8 GiB hosts: one whose agent admits 24 vCPUs
			// (WRENN_CPU_OVERCOMMIT=12), one whose agent reports nothing
			// (8 vCPUs assumed), one whose agent admits 1 vCPU.
			big := placeHost(t, db, wrenn.Host{CreatedBy: u.ID, Capacity: &wrenn.HostCapacity{VCPUs: 24, MemoryMB: 7168}}, 2, 8192)
			old := placeHost(t, db, wrenn.Host{CreatedBy: u.ID}, 2, 8192)
			small := placeHost(t, db, wrenn.Host{CreatedBy: u.ID, Capacity: &wrenn.HostCapacity{VCPUs: 1, MemoryMB: 7168}}, 2, 8192)
			p := fleet.NewPlacer(fleet.PlacerConfig{Store: db})
			got := map[string]int{}
			for range 33 {
				id, err := p.Place(ctx, fleet.PlaceRequest{TeamID: team.ID, VCPUs: 1, MemoryMB: 128})
				if err != nil {
					t.Fatalf("after %v: %v", got, err)
				}
				got[id]++
				placeSandbox(t, db, team.ID, id, 1, 128)
			}
			if got[big] != 24 || got[old] != 8 || got[small] != 1 {
				t.Fatalf("placed %v, want 24 on the host admitting 24, 8 on the one reporting nothing, 1 on the one admitting 1", got)
			}
			_, err := p.Place(ctx, fleet.PlaceRequest{TeamID: team.ID, VCPUs: 1, MemoryMB: 128})
			if wrenn.ErrorCode(err) != wrenn.EHostFull || !strings.Contains(wrenn.ErrorMessage(err), "the fleet is full") {
				t.Fatalf("a full fleet: %v", err)
			}

			// Memory: an agent that admits more memory than the machine
			// has (WRENN_MEMORY_OVERCOMMIT) takes a sandbox no default
			// host could; one admitting none takes nothing.
			roomy := placeHost(t, db, wrenn.Host{CreatedBy: u.ID, Capacity: &wrenn.HostCapacity{VCPUs: 8, MemoryMB: 16384}}, 2, 8192)
			placeHost(t, db, wrenn.Host{CreatedBy: u.ID, Capacity: &wrenn.HostCapacity{VCPUs: 8, MemoryMB: 0}}, 2, 8192)
			plain := placeHost(t, db, wrenn.Host{CreatedBy: u.ID}, 2, 8192)
			for range 2 {
				id, err := p.Place(ctx, fleet.PlaceRequest{TeamID: team.ID, VCPUs: 1, MemoryMB: 8192})
				if err != nil || id != roomy {
					t.Fatalf("8 GiB went to %s, %v; want the host admitting 16 GiB, %s", id, err, roomy)
				}
				placeSandbox(t, db, team.ID, id, 1, 8192)
			}
			if _, err := p.Place(ctx, fleet.PlaceRequest{TeamID: team.ID, VCPUs: 1, MemoryMB: 8192}); wrenn.ErrorCode(err) != wrenn.EHostFull {
				t.Fatalf("8 GiB more: %v", err)
			}
			for range 8 {
				id, err := p.Place(ctx, fleet.PlaceRequest{TeamID: team.ID, VCPUs: 1, MemoryMB: 64, Exclude: []string{roomy}})
				if err != nil || id != plain {
					t.Fatalf("a small sandbox went to %s, %v; want the only host with room, %s", id, err, plain)
				}
				placeSandbox(t, db, team.ID, id, 1, 64)
			}

			// The control plane's own agent: what Local says it admits.
			only := fleet.NewPlacer(fleet.PlacerConfig{Store: storetest.MustOpen(t, engine),
				Local: &fleet.LocalHost{ID: "local", CPUCores: 2, MemoryMB: 8192, Capacity: &wrenn.HostCapacity{VCPUs: 24, MemoryMB: 7168}}})
			if _, err := only.Place(ctx, fleet.PlaceRequest{TeamID: team.ID, VCPUs: 24, MemoryMB: 7168}); err != nil {
				t.Fatalf("the local agent's whole capacity: %v", err)
			}
			if _, err := only.Place(ctx, fleet.PlaceRequest{TeamID: team.ID, VCPUs: 25, MemoryMB: 128}); wrenn.ErrorCode(err) != wrenn.EHostFull {
				t.Fatalf("more than the local agent's capacity: %v", err)
			}
			dflt := fleet.NewPlacer(fleet.PlacerConfig{Store: storetest.MustOpen(t, engine), Local: &fleet.LocalHost{ID: "local", CPUCores: 2, MemoryMB: 8192}})
			if _, err := dflt.Place(ctx, fleet.PlaceRequest{TeamID: team.ID, VCPUs: 9, MemoryMB: 128}); wrenn.ErrorCode(err) != wrenn.EHostFull {
				t.Fatalf("more than a local agent's default admission: %v", err)
			}
		})
	}
}
