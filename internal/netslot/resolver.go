package netslot

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/time/rate"

	"github.com/wrennhq/wrenn"
)

// The resolver each sandbox asks its names of. It runs in the host agent,
// on sockets opened inside the slot's namespace at the guest's gateway
// address, and forwards to the operator's upstream servers from the host,
// so a guest resolves names even where the host's own resolver sits on a
// private address the guest may not reach. Every query the guest sends to
// port 53 anywhere is redirected here (nsChains), so the policy cannot be
// stepped around by naming another server.
//
// Domain rules are enforced on addresses: an answer for a name an allow
// rule covers adds its addresses to the slot's allow_names set before the
// guest sees it; a name a deny rule covers gets NXDOMAIN, and its addresses
// (looked up from the host) join deny_names, so connecting to them
// directly fails too. A sandbox without internet asks only for the names
// it is allowed: anything else is NXDOMAIN and never leaves the host, which
// closes DNS as a tunnel out.

// Bounds of the resolver.
const (
	dnsTimeout      = 2 * time.Second // per upstream exchange
	dnsRate         = 200             // queries a second, per sandbox
	dnsBurst        = 400
	learnMinTTL     = time.Minute     // how long a learned address stays, at least
	learnMaxTTL     = time.Hour       // and at most
	denyRefresh     = 5 * time.Minute // how often denied names are looked up again
	maxLearned      = 4096            // addresses learned per sandbox and set
	denyLookupLimit = 3 * time.Second // the first lookup of denied names, before the guest runs
	upstreamTries   = 2               // servers tried per query
	nxdomainTTL     = uint32(30)      // the negative-answer TTL of refused names
)

// egressPolicy is a wrenn.Network parsed for enforcement.
type egressPolicy struct {
	internet     bool
	allow, deny  []netip.Prefix
	allowDomains []wrenn.EgressRule
	denyDomains  []wrenn.EgressRule
}

func compilePolicy(n wrenn.Network) (egressPolicy, error) {
	p := egressPolicy{internet: n.Internet}
	for _, l := range []struct {
		in       []string
		prefixes *[]netip.Prefix
		domains  *[]wrenn.EgressRule
	}{{n.AllowOut, &p.allow, &p.allowDomains}, {n.DenyOut, &p.deny, &p.denyDomains}} {
		rules, err := wrenn.ParseEgressRules(l.in)
		if err != nil {
			return p, err
		}
		for _, r := range rules {
			if r.Prefix.IsValid() {
				*l.prefixes = append(*l.prefixes, r.Prefix)
			} else {
				*l.domains = append(*l.domains, r)
			}
		}
	}
	return p, nil
}

func matchesAny(rules []wrenn.EgressRule, name string) bool {
	for _, r := range rules {
		if r.Matches(name) {
			return true
		}
	}
	return false
}

// verdict is what the resolver does with a query for name.
type verdict int

const (
	forward      verdict = iota // ask upstream, answer as it does
	forwardLearn                // ask upstream; its addresses join allow_names
	refuse                      // NXDOMAIN; the name's addresses join deny_names
	withhold                    // NXDOMAIN; nothing leaves the host
)

func (p egressPolicy) verdict(name string) verdict {
	switch {
	case matchesAny(p.allowDomains, name):
		return forwardLearn
	case matchesAny(p.denyDomains, name):
		return refuse
	case !p.internet:
		return withhold
	}
	return forward
}

// learner adds addresses to one of a slot's named sets for ttl.
type learner func(set string, addrs []netip.Addr, ttl time.Duration) error

// resolver serves one slot.
type resolver struct {
	log      *slog.Logger
	upstream []string // host:port
	learn    learner
	limit    *rate.Limiter
	client   *dns.Client
	conns    []io.Closer // the sockets it serves

	mu      sync.Mutex
	policy  egressPolicy
	learned map[string]int // per set, how many learns so far (a bound, not an exact count)

	stop chan struct{}
	done sync.WaitGroup
}

func newResolver(log *slog.Logger, upstream []string, learn learner) *resolver {
	return &resolver{
		log: log, upstream: upstream, learn: learn,
		limit:   rate.NewLimiter(dnsRate, dnsBurst),
		client:  &dns.Client{Timeout: dnsTimeout},
		learned: map[string]int{},
		stop:    make(chan struct{}),
	}
}

// serve answers queries on pc (UDP) and l (TCP) until close.
func (r *resolver) serve(pc net.PacketConn, l net.Listener) {
	h := dns.HandlerFunc(r.handle)
	r.conns = []io.Closer{pc, l}
	servers := []*dns.Server{
		{PacketConn: pc, Handler: h, ReadTimeout: dnsTimeout},
		{Listener: l, Handler: h, ReadTimeout: dnsTimeout, WriteTimeout: dnsTimeout, IdleTimeout: func() time.Duration { return 10 * time.Second }},
	}
	for _, s := range servers {
		r.done.Add(1)
		go func() {
			defer r.done.Done()
			if err := s.ActivateAndServe(); err != nil && !isClosed(err) {
				r.log.Warn("sandbox resolver stopped", slog.Any(logErr, err))
			}
		}()
	}
	r.done.Add(1)
	go r.refreshDenied()
}

func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "use of closed")
}

// setPolicy replaces the policy and looks the denied names up at once, so
// their addresses are dropped before the guest runs anything.
func (r *resolver) setPolicy(ctx context.Context, p egressPolicy) {
	r.mu.Lock()
	r.policy = p
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, denyLookupLimit)
	defer cancel()
	r.lookupDenied(ctx, p)
}

func (r *resolver) close() {
	select {
	case <-r.stop:
		return
	default:
	}
	close(r.stop)
	// Closing the sockets ends the servers, whether or not they got as
	// far as serving (Shutdown would refuse one that had not).
	for _, c := range r.conns {
		_ = c.Close()
	}
	r.done.Wait()
}

func (r *resolver) refreshDenied() {
	defer r.done.Done()
	t := time.NewTicker(denyRefresh)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		r.mu.Lock()
		p := r.policy
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), denyLookupLimit)
		r.lookupDenied(ctx, p)
		cancel()
	}
}

// lookupDenied resolves each denied name (wildcards have no name of their
// own to look up) and drops its addresses.
func (r *resolver) lookupDenied(ctx context.Context, p egressPolicy) {
	for _, d := range p.denyDomains {
		if d.Wildcard || ctx.Err() != nil {
			continue
		}
		r.learnFromUpstream(ctx, d.Domain, setDenyNames)
	}
}

// learnFromUpstream asks upstream for name's IPv4 addresses and adds them
// to set.
func (r *resolver) learnFromUpstream(ctx context.Context, name, set string) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	q.RecursionDesired = true
	resp, err := r.exchange(ctx, q)
	if err != nil {
		r.log.Debug("look up a name of the egress policy", slog.String("name", name), slog.Any(logErr, err))
		return
	}
	r.learnAnswer(set, resp)
}

// learnAnswer adds the A records of resp to set, for their TTL within
// bounds.
func (r *resolver) learnAnswer(set string, resp *dns.Msg) {
	var addrs []netip.Addr
	ttl := learnMaxTTL
	for _, rr := range resp.Answer {
		a, ok := rr.(*dns.A)
		if !ok {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
			addrs = append(addrs, ip)
			ttl = min(ttl, time.Duration(a.Hdr.Ttl)*time.Second)
		}
	}
	if len(addrs) == 0 {
		return
	}
	if set == setDenyNames {
		ttl = max(ttl, 3*denyRefresh) // until the next lookups, at least
	}
	ttl = min(max(ttl, learnMinTTL), learnMaxTTL)
	r.mu.Lock()
	full := r.learned[set] >= maxLearned
	if !full {
		r.learned[set] += len(addrs)
	}
	r.mu.Unlock()
	if full {
		r.log.Warn("sandbox resolver: too many addresses learned; not adding more", slog.String("set", set))
		return
	}
	if err := r.learn(set, addrs, ttl); err != nil {
		r.log.Warn("sandbox resolver: add learned addresses", slog.String("set", set), slog.Any(logErr, err))
	}
}

func (r *resolver) handle(w dns.ResponseWriter, req *dns.Msg) {
	defer w.Close()
	reply := func(m *dns.Msg) { _ = w.WriteMsg(m) }
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 || req.Response {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		reply(m)
		return
	}
	if !r.limit.Allow() {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		reply(m)
		return
	}
	q := req.Question[0]
	name := strings.TrimSuffix(strings.ToLower(q.Name), ".")
	r.mu.Lock()
	p := r.policy
	r.mu.Unlock()
	v := p.verdict(name)
	ctx, cancel := context.WithTimeout(context.Background(), 2*dnsTimeout)
	defer cancel()
	switch v {
	case refuse, withhold:
		if v == refuse && q.Qtype == dns.TypeA {
			r.learnFromUpstream(ctx, name, setDenyNames)
		}
		reply(nxdomain(req))
		return
	}
	resp, err := r.exchange(ctx, req)
	if err != nil {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeServerFailure)
		reply(m)
		return
	}
	if v == forwardLearn {
		r.learnAnswer(setAllowNames, resp)
	}
	resp.Id = req.Id
	reply(resp)
}

// nxdomain is the answer to a name the policy keeps from the guest, with
// an extended error (RFC 8914) saying it was blocked.
func nxdomain(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeNameError)
	m.RecursionAvailable = true
	m.Ns = []dns.RR{&dns.SOA{
		Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: nxdomainTTL},
		Ns:  "wrenn.invalid.", Mbox: "hostmaster.wrenn.invalid.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: nxdomainTTL,
	}}
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked, ExtraText: "blocked by the sandbox's egress policy"})
	}
	return m
}

// exchange asks the upstream servers in turn, over TCP when an answer
// comes back truncated.
func (r *resolver) exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	var last error = errors.New("no upstream resolver")
	for i, up := range r.upstream {
		if i == upstreamTries {
			break
		}
		resp, _, err := r.client.ExchangeContext(ctx, req, up)
		if err == nil && resp.Truncated {
			tcp := &dns.Client{Net: "tcp", Timeout: dnsTimeout}
			resp, _, err = tcp.ExchangeContext(ctx, req, up)
		}
		if err == nil {
			return resp, nil
		}
		last = err
	}
	return nil, last
}
