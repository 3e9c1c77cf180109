package fleet_test

import (
	"strings"
	"testing"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/fleet"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// TestPlaceInStore: a placement kept to a shared store chooses only hosts
// recorded with that store (the control plane's own agent too, if its
// agent has it), still online, undrained and with room; none is a 503
// naming the store. The store's records: a host's store, a template's.
func TestPlaceInStore(t *testing.T) {
	t.Parallel()
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			db := storetest.MustOpen(t, engine)
			u, team := placeAccount(t, db, "travel@example.com")
			a := placeHost(t, db, wrenn.Host{CreatedBy: u.ID}, 4, 8192)
			b := placeHost(t, db, wrenn.Host{CreatedBy: u.ID}, 4, 8192)
			c := placeHost(t, db, wrenn.Host{CreatedBy: u.ID}, 4, 8192)
			drained := placeHost(t, db, wrenn.Host{CreatedBy: u.ID, Draining: true}, 4, 8192)
			for _, h := range []string{a, b, drained} {
				if err := db.SetHostStore(ctx, h, "store-s"); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.SetHostStore(ctx, c, "store-t"); err != nil {
				t.Fatal(err)
			}
			if got, err := db.HostStore(ctx, a); err != nil || got != "store-s" {
				t.Fatalf("HostStore = %q, %v", got, err)
			}
			if got, err := db.HostStore(ctx, "host-nobody"); err != nil || got != "" {
				t.Fatalf("HostStore of no host = %q, %v", got, err)
			}
			local := &fleet.LocalHost{ID: "local", CPUCores: 4, MemoryMB: 8192}
			p := fleet.NewPlacer(fleet.PlacerConfig{Store: db, Local: local, Stores: db})
			p.SetLocalStore("store-t")
			seen := map[string]int{}
			for range 40 {
				id, err := p.Place(ctx, fleet.PlaceRequest{TeamID: team.ID, VCPUs: 1, MemoryMB: 256, Store: "store-s"})
				if err != nil {
					t.Fatal(err)
				}
				seen[id]++
			}
			if len(seen) != 2 || seen[a] == 0 || seen[b] == 0 {
				t.Fatalf("placements in store-s: %v, want hosts %s and %s only", seen, a, b)
			}
			seen = map[string]int{}
			for range 20 {
				id, err := p.Place(ctx, fleet.PlaceRequest{TeamID: team.ID, VCPUs: 1, MemoryMB: 256, Store: "store-t"})
				if err != nil {
					t.Fatal(err)
				}
				seen[id]++
			}
			if len(seen) != 2 || seen[c] == 0 || seen["local"] == 0 {
				t.Fatalf("placements in store-t: %v, want host %s and the local agent", seen, c)
			}
			if id, err := p.Place(ctx, fleet.PlaceRequest{TeamID: team.ID, VCPUs: 1, MemoryMB: 256, Store: "store-s", Exclude: []string{a}}); err != nil || id != b {
				t.Fatalf("placement in store-s without %s = %q, %v", a, id, err)
			}
			_, err := p.Place(ctx, fleet.PlaceRequest{TeamID: team.ID, VCPUs: 1, MemoryMB: 256, Store: "store-u"})
			if wrenn.ErrorCode(err) != wrenn.EHostFull || !strings.Contains(wrenn.ErrorMessage(err), "no host of the shared store store-u") {
				t.Fatalf("placement in a store no host has = %v", err)
			}

			snap := &wrenn.Template{Name: "snap", TeamID: team.ID, Type: wrenn.TemplateSnapshot, CreatedAt: placeBase}
			if err := db.PutTemplate(ctx, snap); err != nil {
				t.Fatal(err)
			}
			if got, err := db.TemplateStore(ctx, team.ID, "snap"); err != nil || got != "" {
				t.Fatalf("TemplateStore before = %q, %v", got, err)
			}
			if err := db.SetTemplateStore(ctx, team.ID, "snap", "store-s"); err != nil {
				t.Fatal(err)
			}
			if got, err := db.TemplateStore(ctx, team.ID, "snap"); err != nil || got != "store-s" {
				t.Fatalf("TemplateStore = %q, %v", got, err)
			}
		})
	}
}
