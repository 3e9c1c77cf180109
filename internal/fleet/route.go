package fleet

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agentrpc"
)

// Router reaches the agent of a joined host (issue 13): the control plane
// asks it for the agent of a sandbox's host_id. It keeps one client per
// host, dialled over the agent link (Link.DialAgent: mutual TLS, each new
// connection checked against the store) and dialled again when the host's
// address changes. The host's record is read on every call, so a host that
// is unreachable, revoked or deleted is refused at once (a 502 envelope
// saying so) instead of a call that hangs on a dead address.
type Router struct {
	link *Link
	log  *slog.Logger
	// dialled, if set, is told of every new client (the server registers
	// the host's base templates with it); a client it fails is not kept.
	dialled func(ctx context.Context, hostID string, c *agentrpc.Client) error

	mu      sync.Mutex
	clients map[string]routed
}

type routed struct {
	addr string
	c    *agentrpc.Client
}

// NewRouter returns a Router over link. dialled may be nil.
func NewRouter(link *Link, log *slog.Logger, dialled func(ctx context.Context, hostID string, c *agentrpc.Client) error) *Router {
	return &Router{link: link, log: log, dialled: dialled, clients: map[string]routed{}}
}

// Agent returns the agent of host id, or EHostAgent when the host cannot
// take calls now.
func (r *Router) Agent(ctx context.Context, id string) (wrenn.Agent, error) {
	c, err := r.Client(ctx, id)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Client is Agent as an *agentrpc.Client.
func (r *Router) Client(ctx context.Context, id string) (*agentrpc.Client, error) {
	h, err := r.link.st.GetHost(ctx, id)
	if wrenn.ErrorCode(err) == wrenn.ENotFound {
		return nil, wrenn.Errorf(wrenn.EHostAgent, "the sandbox's host %s no longer exists", id)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case h.Status == wrenn.HostUnreachable:
		return nil, wrenn.Errorf(wrenn.EHostAgent, "the sandbox's host %s is unreachable: its agent has stopped sending heartbeats", id)
	case h.Status != wrenn.HostOnline || h.Address == "":
		return nil, wrenn.Errorf(wrenn.EHostAgent, "the sandbox's host %s is %s, not online", id, h.Status)
	}
	r.mu.Lock()
	cur, ok := r.clients[id]
	r.mu.Unlock()
	if ok && cur.addr == h.Address {
		return cur.c, nil
	}
	c, err := r.link.DialAgent(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.dialled != nil {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := r.dialled(dctx, id, c)
		cancel()
		if err != nil {
			r.log.WarnContext(ctx, "a host's agent does not answer", slog.String("host_id", id), slog.Any("error", err))
			return nil, wrenn.Errorf(wrenn.EHostAgent, "the sandbox's host %s does not answer", id)
		}
	}
	r.mu.Lock()
	r.clients[id] = routed{addr: h.Address, c: c}
	r.mu.Unlock()
	r.log.InfoContext(ctx, "dialled a host's agent", slog.String("host_id", id), slog.String("address", h.Address))
	return c, nil
}
