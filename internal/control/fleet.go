package control

import (
	"context"
	"slices"

	"github.com/wrennhq/wrenn"
)

// Fleet places sandboxes across many hosts and reaches each one's agent
// (issue 13; cmd/wrenn wires internal/fleet's Placer and Router). Without
// one (Config.Fleet nil) the Service drives its one agent, Config.Agent,
// as it always has.
type Fleet interface {
	// Agent returns the agent of host hostID, other than Config.HostID's;
	// EHostAgent when the host cannot take calls now.
	Agent(ctx context.Context, hostID string) (wrenn.Agent, error)
	// Place chooses the host of a new sandbox (Config.HostID's included)
	// among those not in exclude; EHostFull when none can take it.
	Place(ctx context.Context, teamID string, tags []string, vcpus, memoryMB int, exclude []string) (string, error)
}

// placeAttempts bounds the hosts a create tries when agents refuse it as
// full (placement decides from the store; an agent knows better).
const placeAttempts = 3

// agentFor returns the agent of host hostID: the Service's own agent for
// its own host, or in one-agent mode for any; a joined host's through the
// fleet.
func (s *Service) agentFor(ctx context.Context, hostID string) (wrenn.Agent, error) {
	if s.fleet == nil || (s.agent != nil && hostID == s.hostID) {
		return s.needAgent()
	}
	return s.fleet.Agent(ctx, hostID)
}

// snapshotterFor is agentFor for the optional Snapshotter.
func (s *Service) snapshotterFor(ctx context.Context, hostID string) (wrenn.Snapshotter, error) {
	a, err := s.agentFor(ctx, hostID)
	if err != nil {
		return nil, err
	}
	return asSnapshotter(a)
}

// place chooses the host and agent of a new sandbox. In one-agent mode it
// is the Service's own, untagged: a create asking for host tags finds no
// host.
func (s *Service) place(ctx context.Context, teamID string, p CreateParams, exclude []string) (string, wrenn.Agent, error) {
	if s.fleet == nil {
		if len(p.HostTags) > 0 {
			return "", nil, wrenn.Errorf(wrenn.EHostFull, "no available host has the tags %s: this server drives one untagged host", joinTags(p.HostTags))
		}
		a, err := s.needAgent()
		return s.hostID, a, err
	}
	id, err := s.fleet.Place(ctx, teamID, p.HostTags, p.VCPUs, p.MemoryMB, exclude)
	if err != nil {
		return "", nil, err
	}
	a, err := s.agentFor(ctx, id)
	return id, a, err
}

func joinTags(tags []string) string {
	out := ""
	for i, t := range tags {
		if i > 0 {
			out += ", "
		}
		out += t
	}
	return out
}

// checkHostTags checks the host tags a create asks for.
func checkHostTags(tags []string) error {
	if len(tags) > 16 {
		return wrenn.Errorf(wrenn.EInvalid, "host_tags: at most 16")
	}
	if slices.Contains(tags, "") {
		return wrenn.Errorf(wrenn.EInvalid, "host_tags: a tag must not be empty")
	}
	return nil
}
