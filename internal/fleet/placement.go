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
//     that hold a VM (pending or running) plus this one, its vCPUs and
//     memory stay within its capacity: what its agent's admission
//     (internal/agent, admit.go) admits, after the overcommit and reserve
//     it was configured with (WRENN_CPU_OVERCOMMIT, ...), as the agent
//     reports it when it registers and in every heartbeat
//     (wrenn.HostCapacity, kept in the store). A host whose agent reports
//     none (one older than the report) is assumed to admit as the agent
//     does by default: its cores × PlacementCPUOvercommit vCPUs and its
//     memory less PlacementMemoryReserveMB. The agent still has the last
//     word: a create it refuses as full goes to another candidate
//     (control.CreateSandbox).
//  3. Of the candidates, K (BestOfK, 2) are drawn at random and the least
//     loaded of them wins, as E2B does: the load of a host is the larger
//     of its vCPU and memory shares once the sandbox is added; ties go to
//     the host with fewer sandboxes. Drawing two rather than scanning for
//     the global minimum keeps several control planes, each deciding from
//     a slightly old view, from all piling onto the same host, and still
//     keeps the load even.
//
//     Only the drawn hosts' loads are read, when that is enough. The
//     hosts that pass step 1 but for room are put in a random order; the
//     loads of the first few (Sample, 4×K) are read, and only if fewer
//     than K of them have room are the rest read, all at once. The first
//     K with room in a random order are a uniform draw of K of the hosts
//     with room, so this chooses as reading every load would; a fleet
//     with room costs one query of Sample hosts' sandboxes, not of all of
//     them (issue 13's ≤ 5 ms with 1,000 hosts: docs/BENCHMARKS.md). The
//     rest are read with one query, not in growing rounds: on PostgreSQL
//     a long list of host IDs can be planned as a scan of every running
//     sandbox, once per round.
//  4. No candidate is a 503 (wrenn.EHostFull) that says whether no host
//     matches the tags or every matching host is full.
//
// The agent a control plane runs itself or was given (--agent local or
// HOST:PORT) is one more candidate when present: a regular, untagged host
// that is always online, under the ID its agent reports, with the size
// and capacity Local gives. It has no row in the hosts table: it did not join, has no
// certificate and cannot be drained or deleted through /v1/hosts.

// Defaults of placement.
const (
	BestOfK = 2
	// The agent's admission defaults (internal/agent), which placement
	// assumes of a host whose agent reports no capacity.
	PlacementCPUOvercommit   = 4
	PlacementMemoryReserveMB = 1024
	// SampleFactor × K hosts' loads are read first (PlacerConfig.Sample):
	// enough that a fleet with a few full hosts rarely needs more.
	SampleFactor = 4
)

// PlacementStore is what placement reads (internal/store implements it).
type PlacementStore interface {
	// PlacementHosts returns the registered hosts that are online and not
	// draining (ID, type, team, address, size, reported capacity and, if
	// withTags, tags).
	PlacementHosts(ctx context.Context, withTags bool) ([]*wrenn.Host, error)
	// HostLoadsOf returns what the sandboxes on the hosts of ids hold
	// (pending or running ones), by host ID; a host with none is absent.
	HostLoadsOf(ctx context.Context, ids []string) (map[string]wrenn.HostLoad, error)
	// HostLoads is HostLoadsOf for every host.
	HostLoads(ctx context.Context) (map[string]wrenn.HostLoad, error)
}

// LocalHost is the control plane's own agent as a placement candidate.
type LocalHost struct {
	ID       string
	CPUCores int
	MemoryMB int
	// Capacity is what its agent admits; nil assumes the default
	// admission of CPUCores and MemoryMB.
	Capacity *wrenn.HostCapacity
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
	// Sample is how many hosts' loads are read first; 0 means
	// SampleFactor × K. Half as many as there are hosts or more reads
	// every load at once, as placement did before it sampled.
	Sample int
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
	sample int
	rand   func(int) int
}

// NewPlacer returns a Placer.
func NewPlacer(c PlacerConfig) *Placer {
	r := c.Rand
	if r == nil {
		r = rand.IntN
	}
	k := cmp.Or(c.K, BestOfK)
	return &Placer{st: c.Store, stores: c.Stores, local: c.Local, k: k, sample: max(cmp.Or(c.Sample, SampleFactor*k), 1), rand: r}
}

// sized is a host that passes every test but room, with what it admits.
type sized struct {
	id           string
	vcpus, memMB int
}

// capacity is what a host of cores and memMB admits: what its agent
// reported (c), or else the agent's default admission (step 2 of the
// policy).
func capacity(id string, cores, memMB int, c *wrenn.HostCapacity) sized {
	if c != nil {
		return sized{id, c.VCPUs, c.MemoryMB}
	}
	mem := memMB - PlacementMemoryReserveMB
	if mem <= 0 {
		mem = memMB // a host too small for the reserve: all of it
	}
	return sized{id, cores * PlacementCPUOvercommit, mem}
}

type candidate struct {
	id        string
	load      float64
	sandboxes int
}

// Place returns the ID of the host the sandbox goes to, or EHostFull.
func (p *Placer) Place(ctx context.Context, req PlaceRequest) (string, error) {
	hosts, err := p.st.PlacementHosts(ctx, len(req.Tags) > 0)
	if err != nil {
		return "", fmt.Errorf("place sandbox: %w", err)
	}
	inStore, err := p.storeHosts(ctx, req.Store)
	if err != nil {
		return "", err
	}
	matched := p.matching(hosts, req, inStore)
	if len(matched) == 0 {
		if req.Store != "" {
			return "", wrenn.Errorf(wrenn.EHostFull, "no host of the shared store %s is available%s (hosts must be online and not draining)",
				req.Store, tagsPhrase(req.Tags))
		}
		if len(req.Tags) > 0 {
			return "", wrenn.Errorf(wrenn.EHostFull, "no available host has the tags %s (hosts must be online and not draining)", strings.Join(req.Tags, ", "))
		}
		return "", wrenn.Errorf(wrenn.EHostFull, "no host is available: none is online and not draining")
	}
	cands, err := p.draw(ctx, matched, req)
	if err != nil {
		return "", fmt.Errorf("place sandbox: %w", err)
	}
	if len(cands) == 0 {
		return "", wrenn.Errorf(wrenn.EHostFull, "the fleet is full: none of its %d available hosts%s has room for %d vCPUs and %d MiB now",
			len(matched), tagsPhrase(req.Tags), req.VCPUs, req.MemoryMB)
	}
	best := 0
	for i := range cands {
		if less(cands[i], cands[best]) {
			best = i
		}
	}
	return cands[best].id, nil
}

// matching returns the hosts (the local one first, if any) that would do
// for req but for their load: registered, online, not draining, visible
// to the team, not excluded, with every tag asked for, and of the shared
// store inStore lists, if not nil.
func (p *Placer) matching(hosts []*wrenn.Host, req PlaceRequest, inStore map[string]bool) []sized {
	var out []sized
	ok := func(id string, tags []string) bool {
		if slices.Contains(req.Exclude, id) || (inStore != nil && !inStore[id]) {
			return false
		}
		for _, t := range req.Tags {
			if !slices.Contains(tags, t) {
				return false
			}
		}
		return true
	}
	if p.local != nil && ok(p.local.ID, nil) {
		out = append(out, capacity(p.local.ID, p.local.CPUCores, p.local.MemoryMB, p.local.Capacity))
	}
	for _, h := range hosts {
		if h.Status != wrenn.HostOnline || h.Draining || h.Address == "" || h.CPUCores == nil || h.MemoryMB == nil {
			continue
		}
		if h.Type == wrenn.HostBYOC && h.TeamID != req.TeamID {
			continue
		}
		if ok(h.ID, h.Tags) {
			out = append(out, capacity(h.ID, *h.CPUCores, *h.MemoryMB, h.Capacity))
		}
	}
	return out
}

// draw returns up to K hosts of matched with room for req, drawn at
// random, reading the loads of as few hosts as it can (step 3 of the
// policy). It reorders matched.
func (p *Placer) draw(ctx context.Context, matched []sized, req PlaceRequest) ([]candidate, error) {
	// shuffle makes matched[from:to] fresh draws from matched[from:] (a
	// partial Fisher–Yates shuffle).
	shuffle := func(from, to int) {
		for j := from; j < to; j++ {
			r := j + p.rand(len(matched)-j)
			matched[j], matched[r] = matched[r], matched[j]
		}
	}
	var cands []candidate
	add := func(hosts []sized, loads map[string]wrenn.HostLoad) {
		for _, h := range hosts {
			if len(cands) == p.k {
				return
			}
			if c, ok := fits(h, loads[h.id], req); ok {
				cands = append(cands, c)
			}
		}
	}
	n := 0
	if p.sample < len(matched)-p.sample { // a sample under half is worth reading first
		n = p.sample
		shuffle(0, n)
		ids := make([]string, n)
		for i, h := range matched[:n] {
			ids[i] = h.id
		}
		loads, err := p.st.HostLoadsOf(ctx, ids)
		if err != nil {
			return nil, err
		}
		if add(matched[:n], loads); len(cands) == p.k {
			return cands, nil
		}
	}
	shuffle(n, len(matched))
	loads, err := p.st.HostLoads(ctx)
	if err != nil {
		return nil, err
	}
	add(matched[n:], loads)
	return cands, nil
}

// fits returns h as a candidate if, with load on it already, it admits
// req (step 2 of the policy).
func fits(h sized, l wrenn.HostLoad, req PlaceRequest) (candidate, bool) {
	if h.vcpus <= 0 || h.memMB <= 0 {
		return candidate{}, false
	}
	cpuShare := float64(l.VCPUs+req.VCPUs) / float64(h.vcpus)
	memShare := float64(l.MemoryMB+req.MemoryMB) / float64(h.memMB)
	if cpuShare > 1 || memShare > 1 {
		return candidate{}, false
	}
	return candidate{id: h.id, load: max(cpuShare, memShare), sandboxes: l.Sandboxes}, true
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
