package fleet_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/fleet"
	"github.com/wrennhq/wrenn/internal/store"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

var placeBase = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

// placeAccount records a user and their team.
func placeAccount(tb testing.TB, db *store.DB, email string) (*wrenn.User, *wrenn.Team) {
	tb.Helper()
	u := &wrenn.User{ID: wrenn.NewID(wrenn.PrefixUser), Email: email, PasswordHash: "$argon2id$fake", CreatedAt: placeBase}
	tm := &wrenn.Team{ID: wrenn.NewID(wrenn.PrefixTeam), Name: email + "'s team", CreatedAt: placeBase}
	if err := db.CreateAccount(context.Background(), u, tm); err != nil {
		tb.Fatal(err)
	}
	return u, tm
}

// placeHost records a registered host as given (status, draining, size)
// with tags.
func placeHost(tb testing.TB, db *store.DB, h wrenn.Host, cores, memMB int, tags ...string) string {
	tb.Helper()
	ctx := context.Background()
	h.ID = wrenn.NewID(wrenn.PrefixHost)
	h.Type = cmpOr(h.Type, wrenn.HostRegular)
	h.CPUCores, h.MemoryMB = &cores, &memMB
	h.Address = "192.0.2.1:7070"
	h.Arch = "x86_64"
	h.Status = cmpOr(h.Status, wrenn.HostOnline)
	h.CreatedAt, h.UpdatedAt = placeBase, placeBase
	if err := db.CreateHost(ctx, &h); err != nil {
		tb.Fatal(err)
	}
	for _, t := range tags {
		if err := db.AddHostTag(ctx, h.ID, t, fleet.MaxTags, placeBase); err != nil {
			tb.Fatal(err)
		}
	}
	return h.ID
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// placeSandbox records a running sandbox of the team on host.
func placeSandbox(tb testing.TB, db *store.DB, teamID, hostID string, vcpus, memMB int) {
	tb.Helper()
	sb := &wrenn.Sandbox{ID: wrenn.NewID(wrenn.PrefixSandbox), TeamID: teamID, Template: "minimal", Status: wrenn.StatusRunning,
		VCPUs: vcpus, MemoryMB: memMB, HostID: hostID, CreatedAt: placeBase, LastUpdated: placeBase}
	if err := db.CreateSandbox(context.Background(), sb); err != nil {
		tb.Fatal(err)
	}
}

// TestPlacement checks who is a candidate (online, not draining, visible
// to the team, tagged as asked, with room), that the load spreads evenly
// over the candidates, and what a full fleet and unmatched tags answer.
func TestPlacement(t *testing.T) {
	t.Parallel()
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			db := storetest.MustOpen(t, engine)
			u, team := placeAccount(t, db, "a@example.com")
			_, other := placeAccount(t, db, "b@example.com")
			mk := func(h wrenn.Host, tags ...string) string {
				h.CreatedBy = u.ID
				return placeHost(t, db, h, 8, 16384, tags...)
			}
			gpu := mk(wrenn.Host{}, "gpu", "eu")
			plain := mk(wrenn.Host{})
			own := mk(wrenn.Host{Type: wrenn.HostBYOC, TeamID: team.ID})
			never := map[string]string{
				mk(wrenn.Host{Draining: true}, "gpu"):                  "draining",
				mk(wrenn.Host{Status: wrenn.HostUnreachable}, "gpu"):   "unreachable",
				mk(wrenn.Host{Type: wrenn.HostBYOC, TeamID: other.ID}): "another team's",
			}
			p := fleet.NewPlacer(fleet.PlacerConfig{Store: db, Local: &fleet.LocalHost{ID: "local", CPUCores: 8, MemoryMB: 16384}})
			got := map[string]int{}
			for range 80 {
				id, err := p.Place(ctx, fleet.PlaceRequest{TeamID: team.ID, VCPUs: 1, MemoryMB: 128})
				if err != nil {
					t.Fatal(err)
				}
				if why, ok := never[id]; ok {
					t.Fatalf("placed on a host that is %s", why)
				}
				got[id]++
				placeSandbox(t, db, team.ID, id, 1, 128)
			}
			// Best of two, with the loads recorded as they grow: each of
			// the four candidates ends within a few of 20.
			for _, id := range []string{gpu, plain, own, "local"} {
				if n := got[id]; n < 16 || n > 24 {
					t.Errorf("host %s got %d of 80 (%v), want 20±4", id, n, got)
				}
			}
			for range 10 {
				id, err := p.Place(ctx, fleet.PlaceRequest{TeamID: team.ID, Tags: []string{"gpu"}, VCPUs: 1, MemoryMB: 128})
				if err != nil || id != gpu {
					t.Fatalf("tagged create went to %s, %v; want the tagged online host %s", id, err, gpu)
				}
			}
			_, err := p.Place(ctx, fleet.PlaceRequest{TeamID: team.ID, Tags: []string{"gpu"}, VCPUs: 1, MemoryMB: 128, Exclude: []string{gpu}})
			if wrenn.ErrorCode(err) != wrenn.EHostFull || !strings.Contains(wrenn.ErrorMessage(err), "no available host has the tags gpu") {
				t.Fatalf("tags no candidate has: %v", err)
			}
			// Each host admits 8×4 vCPUs; 16 to 24 are taken on each.
			_, err = p.Place(ctx, fleet.PlaceRequest{TeamID: team.ID, VCPUs: 17, MemoryMB: 128})
			if wrenn.ErrorCode(err) != wrenn.EHostFull || !strings.Contains(wrenn.ErrorMessage(err), "the fleet is full: none of its 4 available hosts has room for 17 vCPUs") {
				t.Fatalf("full fleet: %v", err)
			}
			if _, err := p.Place(ctx, fleet.PlaceRequest{TeamID: team.ID, VCPUs: 8, MemoryMB: 128}); err != nil {
				t.Fatalf("a sandbox that fits: %v", err)
			}
			// The other team sees its BYOC host and the regular ones, not ours.
			for range 20 {
				id, err := p.Place(ctx, fleet.PlaceRequest{TeamID: other.ID, VCPUs: 1, MemoryMB: 128})
				if err != nil || id == own {
					t.Fatalf("other team placed on %s, %v", id, err)
				}
			}
			empty := fleet.NewPlacer(fleet.PlacerConfig{Store: storetest.MustOpen(t, engine)})
			if _, err := empty.Place(ctx, fleet.PlaceRequest{TeamID: team.ID, VCPUs: 1, MemoryMB: 128}); wrenn.ErrorCode(err) != wrenn.EHostFull ||
				wrenn.ErrorMessage(err) != "no host is available: none is online and not draining" {
				t.Fatalf("no hosts: %v", err)
			}
		})
	}
}

// BenchmarkPlacement is one placement decision with 1,000 hosts in the
// store (a tenth of them tagged, some draining or unreachable) and 5,000
// running sandboxes on them: reading the loads of a sample of hosts
// (sample, as placement does) and of every host (all, as it did before),
// in the same run; then a create asking for a tag, and a fleet where all
// but 20 hosts are full.
func BenchmarkPlacement(b *testing.B) {
	for _, engine := range storetest.Engines(b) {
		b.Run(engine, func(b *testing.B) {
			db := storetest.MustOpen(b, engine)
			u, team := placeAccount(b, db, "a@example.com")
			r := rand.New(rand.NewPCG(1, 2))
			var ids []string
			for i := range 1000 {
				// Every agent reports what it admits (the default admission's
				// figures, but read from the store).
				h := wrenn.Host{CreatedBy: u.ID, Capacity: &wrenn.HostCapacity{VCPUs: 32 * fleet.PlacementCPUOvercommit,
					MemoryMB: 131072 - fleet.PlacementMemoryReserveMB}}
				switch i % 50 {
				case 1:
					h.Draining = true
				case 2:
					h.Status = wrenn.HostUnreachable
				}
				var tags []string
				if i%10 == 0 {
					tags = []string{"gpu", fmt.Sprintf("zone-%d", i%3)}
				}
				ids = append(ids, placeHost(b, db, h, 32, 131072, tags...))
			}
			for range 5000 {
				placeSandbox(b, db, team.ID, ids[r.IntN(len(ids))], 2, 1024)
			}
			ctx := context.Background()
			place := func(name string, p *fleet.Placer, req fleet.PlaceRequest) {
				b.Run(name, func(b *testing.B) {
					for b.Loop() {
						if _, err := p.Place(ctx, req); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
			plain := fleet.PlaceRequest{TeamID: team.ID, VCPUs: 2, MemoryMB: 1024}
			sampled := fleet.NewPlacer(fleet.PlacerConfig{Store: db})
			place("sample", sampled, plain)
			place("all", fleet.NewPlacer(fleet.PlacerConfig{Store: db, Sample: 1 << 20}), plain)
			place("tagged", sampled, fleet.PlaceRequest{TeamID: team.ID, Tags: []string{"gpu"}, VCPUs: 2, MemoryMB: 1024})
			// Fill all but 20 of the hosts: each admits 128 vCPUs.
			for i, id := range ids {
				if i%50 != 0 {
					placeSandbox(b, db, team.ID, id, 128, 1024)
				}
			}
			place("nearly-full/sample", sampled, plain)
			place("nearly-full/all", fleet.NewPlacer(fleet.PlacerConfig{Store: db, Sample: 1 << 20}), plain)
		})
	}
}
