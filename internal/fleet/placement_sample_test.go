package fleet_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/fleet"
)

// placementStore is a fleet.PlacementStore of function fields.
type placementStore struct {
	hosts       func(withTags bool) ([]*wrenn.Host, error)
	hostLoadsOf func(ids []string) (map[string]wrenn.HostLoad, error)
	hostLoads   func() (map[string]wrenn.HostLoad, error)
}

func (s placementStore) PlacementHosts(_ context.Context, withTags bool) ([]*wrenn.Host, error) {
	return s.hosts(withTags)
}

func (s placementStore) HostLoadsOf(_ context.Context, ids []string) (map[string]wrenn.HostLoad, error) {
	return s.hostLoadsOf(ids)
}

func (s placementStore) HostLoads(context.Context) (map[string]wrenn.HostLoad, error) {
	return s.hostLoads()
}

// fakeFleet returns a store of n online hosts (8 cores, 16 GiB: 32 vCPUs
// admitted) with the loads given by load(i), counting what it reads.
func fakeFleet(n int, load func(i int) wrenn.HostLoad) (st placementStore, readOf *[]int, readAll *int) {
	var hosts []*wrenn.Host
	loads := map[string]wrenn.HostLoad{}
	for i := range n {
		cores, mem := 8, 16384
		h := &wrenn.Host{ID: fmt.Sprintf("host-%04d", i), Type: wrenn.HostRegular, Status: wrenn.HostOnline,
			Address: "192.0.2.1:7070", CPUCores: &cores, MemoryMB: &mem}
		hosts = append(hosts, h)
		if l := load(i); l != (wrenn.HostLoad{}) {
			loads[h.ID] = l
		}
	}
	readOf, readAll = new([]int), new(int)
	st = placementStore{
		hosts: func(bool) ([]*wrenn.Host, error) { return hosts, nil },
		hostLoadsOf: func(ids []string) (map[string]wrenn.HostLoad, error) {
			*readOf = append(*readOf, len(ids))
			out := map[string]wrenn.HostLoad{}
			for _, id := range ids {
				if l, ok := loads[id]; ok {
					out[id] = l
				}
			}
			return out, nil
		},
		hostLoads: func() (map[string]wrenn.HostLoad, error) {
			*readAll++
			return loads, nil
		},
	}
	return st, readOf, readAll
}

// TestPlacementSamples checks that placement reads the loads of a few
// hosts when they have room, every load only when they have not, and
// chooses as it would reading every load: with the same random draws,
// sampling and reading all choose the same host, whatever the fleet.
func TestPlacementSamples(t *testing.T) {
	t.Parallel()
	req := fleet.PlaceRequest{TeamID: "team-a", VCPUs: 2, MemoryMB: 1024}

	t.Run("room", func(t *testing.T) {
		st, readOf, readAll := fakeFleet(1000, func(i int) wrenn.HostLoad {
			return wrenn.HostLoad{Sandboxes: i % 7, VCPUs: 2 * (i % 7), MemoryMB: 1024 * (i % 7)}
		})
		p := fleet.NewPlacer(fleet.PlacerConfig{Store: st})
		for range 20 {
			if _, err := p.Place(t.Context(), req); err != nil {
				t.Fatal(err)
			}
		}
		if *readAll != 0 || len(*readOf) != 20 {
			t.Fatalf("read every load %d times and some %d times, want 0 and 20", *readAll, len(*readOf))
		}
		for _, n := range *readOf {
			if n != fleet.SampleFactor*fleet.BestOfK {
				t.Fatalf("read the loads of %d hosts, want %d", n, fleet.SampleFactor*fleet.BestOfK)
			}
		}
	})

	t.Run("nearly full", func(t *testing.T) {
		// Only hosts 17 and 901 have room.
		st, readOf, readAll := fakeFleet(1000, func(i int) wrenn.HostLoad {
			if i == 17 || i == 901 {
				return wrenn.HostLoad{Sandboxes: 1, VCPUs: 2, MemoryMB: 1024}
			}
			return wrenn.HostLoad{Sandboxes: 16, VCPUs: 32, MemoryMB: 1024}
		})
		p := fleet.NewPlacer(fleet.PlacerConfig{Store: st})
		got := map[string]int{}
		for range 20 {
			id, err := p.Place(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			got[id]++
		}
		if got["host-0017"]+got["host-0901"] != 20 || *readAll != 20 {
			t.Fatalf("placed %v reading every load %d times (and some %v); want a host with room, after reading every load", got, *readAll, *readOf)
		}
	})

	t.Run("same choice", func(t *testing.T) {
		for seed := range uint64(300) {
			r := rand.New(rand.NewPCG(seed, 7))
			n := 1 + r.IntN(60)
			full := r.Float64() // the share of full hosts
			loads := make([]wrenn.HostLoad, n)
			for i := range loads {
				v := r.IntN(31)
				if r.Float64() < full {
					v = 31 + r.IntN(2)
				}
				loads[i] = wrenn.HostLoad{Sandboxes: v, VCPUs: v, MemoryMB: 512 * v}
			}
			var chose []string
			for _, sample := range []int{0, 1, 3, 1 << 20} {
				st, _, _ := fakeFleet(n, func(i int) wrenn.HostLoad { return loads[i] })
				draws := rand.New(rand.NewPCG(seed, 11))
				p := fleet.NewPlacer(fleet.PlacerConfig{Store: st, Sample: sample, Rand: draws.IntN})
				id, err := p.Place(t.Context(), req)
				if err != nil {
					id = wrenn.ErrorMessage(err)
				}
				chose = append(chose, id)
			}
			for _, c := range chose[1:] {
				if c != chose[0] {
					t.Fatalf("seed %d, %d hosts: samples of 8, 1, 3 and all chose %v; want one choice", seed, n, chose)
				}
			}
		}
	})
}
