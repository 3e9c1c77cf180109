package fleet

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/wrennhq/wrenn"
)

// Placement (issue 13) chooses the host of a new sandbox. The policy:
//
//  1. Candidates are the hosts that are online (a heartbeat within
//     WRENN_HOST_DEAD_AFTER), not draining, registered (an address to dial
//     and recorded cores and memory), visible to the team (regular hosts
//     for every team, a BYOC host only for its own team), carry every tag
//     the create asks for (host_tags), and admit the sandbox.
//  2. A host admits a sandbox when, counting the sandboxes recorded on it
//     that hold a VM (pending or running) plus this one, its vCPUs stay
//     within its cores × CPUOvercommit and its memory within its memory
//     less MemoryReserveMB: the agent's own admission (internal/agent,
//     admit.go) with its defaults, from the store, since the agent RPC
//     has no capacity call. The agent still has the last word: a create it
//     refuses as full goes to another candidate (control.CreateSandbox).
//  3. Of the candidates, K (BestOfK, 2) are drawn at random and the least
//     loaded of them wins, as E2B does: the load of a host is the larger
//     of its vCPU and memory shares once the sandbox is added; ties go to
//     the host with fewer sandboxes. Drawing two rather than scanning for
//     the global minimum keeps several control planes, each deciding from
//     a slightly old view, from all piling onto the same host, and still
//     keeps the load even.
//  4. No candidate is a 503 (wrenn.EHostFull) that says whether no host
//     matches the tags or every matching host is full.
//
// The agent a control plane runs itself or was given (--agent local or
// HOST:PORT) is one more candidate when present: a regular, untagged host
// that is always online, under the ID its agent reports, with the size
// Local gives. It has no row in the hosts table: it did not join, has no
// certificate and cannot be drained or deleted through /v1/hosts.

// Defaults of placement.
const (
	BestOfK = 2
	// The agent's admission defaults (internal/agent), which placement
	// assumes of every host.
	PlacementCPUOvercommit   = 4
	PlacementMemoryReserveMB = 1024
)

// PlacementStore is what placement reads (internal/store implements it).
type PlacementStore interface {
	// PlacementHosts returns the registered hosts that are online and not
	// draining (ID, type, team, address, size and, if withTags, tags),
	// and what the sandboxes on each hold (pending or running ones), by
	// host ID.
	PlacementHosts(ctx context.Context, withTags bool) ([]*wrenn.Host, map[string]wrenn.HostLoad, error)
}

// LocalHost is the control plane's own agent as a placement candidate.
type LocalHost struct {
	ID       string
	CPUCores int
	MemoryMB int
	StoreID  string // its agent's shared store; "" for none
}

// PlaceRequest is a sandbox to place.
type PlaceRequest struct {
	TeamID   string
	Tags     []string // every one must be a tag of the host
	VCPUs    int
	MemoryMB int
	// Exclude are hosts not to choose (ones that refused this sandbox).
	Exclude []string
	// Store, if set, keeps to the hosts of that shared store: a paused
	// sandbox or a snapshot template kept in it (travel.go).
	Store string
}

// PlacerConfig wires a Placer.
type PlacerConfig struct {
	Store PlacementStore
	Local *LocalHost // nil: no agent of its own
	K     int        // 0 means BestOfK
	// Stores lists the hosts of a shared store, for PlaceRequest.Store;
	// nil: no host has one.
	Stores StoreHosts
	// Rand returns a number in [0, n); nil means math/rand/v2.
	Rand func(n int) int
}

// Placer chooses hosts for new sandboxes.
type Placer struct {
	st     PlacementStore
	stores StoreHosts
	local  *LocalHost
	k      int
	rand   func(int) int
}

// NewPlacer returns a Placer.
func NewPlacer(c PlacerConfig) *Placer {
	r := c.Rand
	if r == nil {
		r = rand.IntN
	}
	return &Placer{st: c.Store, stores: c.Stores, local: c.Local, k: cmp.Or(c.K, BestOfK), rand: r}
}

type candidate struct {
	id        string
	load      float64
	sandboxes int
}

// Place returns the ID of the host the sandbox goes to, or EHostFull.
func (p *Placer) Place(ctx context.Context, req PlaceRequest) (string, error) {
	hosts, loads, err := p.st.PlacementHosts(ctx, len(req.Tags) > 0)
	if err != nil {
		return "", fmt.Errorf("place sandbox: %w", err)
	}
	inStore, err := p.storeHosts(ctx, req.Store)
	if err != nil {
		return "", err
	}
	var cands []candidate
	matched := 0 // hosts that would do but for their load
	consider := func(id string, cores, memMB int, tags []string) {
		if slices.Contains(req.Exclude, id) || (inStore != nil && !inStore[id]) {
			return
		}
		for _, t := range req.Tags {
			if !slices.Contains(tags, t) {
				return
			}
		}
		matched++
		l := loads[id]
		cpu := float64(cores * PlacementCPUOvercommit)
		mem := float64(memMB - PlacementMemoryReserveMB)
		if mem <= 0 {
			mem = float64(memMB) // a host too small for the reserve: all of it
		}
		cpuShare := float64(l.VCPUs+req.VCPUs) / cpu
		memShare := float64(l.MemoryMB+req.MemoryMB) / mem
		if cpu <= 0 || cpuShare > 1 || memShare > 1 {
			return
		}
		cands = append(cands, candidate{id: id, load: max(cpuShare, memShare), sandboxes: l.Sandboxes})
	}
	if p.local != nil {
		consider(p.local.ID, p.local.CPUCores, p.local.MemoryMB, nil)
	}
	for _, h := range hosts {
		if h.Status != wrenn.HostOnline || h.Draining || h.Address == "" || h.CPUCores == nil || h.MemoryMB == nil {
			continue
		}
		if h.Type == wrenn.HostBYOC && h.TeamID != req.TeamID {
			continue
		}
		consider(h.ID, *h.CPUCores, *h.MemoryMB, h.Tags)
	}
	if len(cands) == 0 {
		switch {
		case matched > 0:
			return "", wrenn.Errorf(wrenn.EHostFull, "the fleet is full: none of its %d available hosts%s has room for %d vCPUs and %d MiB now",
				matched, tagsPhrase(req.Tags), req.VCPUs, req.MemoryMB)
		case req.Store != "":
			return "", wrenn.Errorf(wrenn.EHostFull, "no host of the shared store %s is available%s (hosts must be online and not draining)",
				req.Store, tagsPhrase(req.Tags))
		case len(req.Tags) > 0:
			return "", wrenn.Errorf(wrenn.EHostFull, "no available host has the tags %s (hosts must be online and not draining)", strings.Join(req.Tags, ", "))
		default:
			return "", wrenn.Errorf(wrenn.EHostFull, "no host is available: none is online and not draining")
		}
	}
	return p.bestOf(cands), nil
}

// bestOf draws K of cands at random (all of them if there are no more)
// and returns the least loaded.
func (p *Placer) bestOf(cands []candidate) string {
	best := -1
	for i := 0; i < p.k && i < len(cands); i++ {
		// A partial Fisher–Yates shuffle: cands[i] is a fresh draw.
		j := i + p.rand(len(cands)-i)
		cands[i], cands[j] = cands[j], cands[i]
		if best < 0 || less(cands[i], cands[best]) {
			best = i
		}
	}
	return cands[best].id
}

func less(a, b candidate) bool {
	if a.load != b.load {
		return a.load < b.load
	}
	return a.sandboxes < b.sandboxes
}

func tagsPhrase(tags []string) string {
	if len(tags) == 0 {
		return ""
	}
	return " with the tags " + strings.Join(tags, ", ")
}

// StoreHosts lists the hosts of a shared store (internal/store implements
// it).
type StoreHosts interface {
	StoreHosts(ctx context.Context, storeID string) ([]string, error)
}

// storeHosts is the set of hosts of store, the control plane's own agent
// among them if its agent has it; nil for store "" (any host).
func (p *Placer) storeHosts(ctx context.Context, store string) (map[string]bool, error) {
	if store == "" {
		return nil, nil
	}
	in := map[string]bool{}
	if p.local != nil && p.local.StoreID == store {
		in[p.local.ID] = true
	}
	if p.stores != nil {
		ids, err := p.stores.StoreHosts(ctx, store)
		if err != nil {
			return nil, fmt.Errorf("place sandbox: %w", err)
		}
		for _, id := range ids {
			in[id] = true
		}
	}
	return in, nil
}

// SetLocalStore records the shared store of the control plane's own agent
// (LocalHost.StoreID). Call it before the Placer is used.
func (p *Placer) SetLocalStore(id string) {
	if p.local != nil {
		p.local.StoreID = id
	}
}
