package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agentrpc"
)

// The agent link (issue 13): hosts' agents register with their one-time
// token and a CSR, and are certified by the fleet's CA; from then on they
// and the control plane know each other by certificate (mutual TLS), with
// no bearer token on the wire. An agent heartbeats, renews its certificate
// before it expires, and is refused as soon as its certificate is revoked
// (its host deleted) or expired.

// LinkStore keeps what the link needs (internal/store implements it).
type LinkStore interface {
	GetHost(ctx context.Context, id string) (*wrenn.Host, error)
	RegisterHost(ctx context.Context, id string, tokenHash []byte, specs wrenn.HostSpecs, cert wrenn.HostCertificate, at time.Time) (*wrenn.Host, error)
	AddHostCertificate(ctx context.Context, cert wrenn.HostCertificate) error
	HostCertificate(ctx context.Context, serial string) (*wrenn.HostCertificate, error)
	HostHeartbeat(ctx context.Context, id string, at time.Time, capacity *wrenn.HostCapacity) (*wrenn.Host, error)
	MarkHostsUnreachable(ctx context.Context, before, at time.Time) ([]string, error)
	// Host loss (loss.go).
	MarkSandboxesMissing(ctx context.Context, at time.Time) ([]*wrenn.Sandbox, error)
	FailMissingSandboxes(ctx context.Context, before, at time.Time) ([]*wrenn.Sandbox, error)
}

// Defaults of the link.
const (
	// DefaultCertTTL is how long an agent's certificate lasts; agents
	// renew it when a third of that is left.
	DefaultCertTTL = 7 * 24 * time.Hour
	// DefaultDeadAfter is how long an online host may go without a
	// heartbeat before it is unreachable.
	DefaultDeadAfter = 10 * time.Second
)

// LinkConfig wires a Link.
type LinkConfig struct {
	Store    LinkStore
	Registry *Service // checks registration tokens
	CA       *CA
	Now      func() time.Time
	Logger   *slog.Logger
	// CertTTL is how long certificates last; 0 means DefaultCertTTL.
	CertTTL time.Duration
	// DeadAfter: 0 means DefaultDeadAfter.
	DeadAfter time.Duration
	// MissingGrace is how long a lost host's sandboxes stay missing
	// before they are given up (loss.go); 0 means DefaultMissingGrace.
	MissingGrace time.Duration
}

// Link is the control plane's end of the agent link.
type Link struct {
	st        LinkStore
	reg       *Service
	ca        *CA
	now       func() time.Time
	log       *slog.Logger
	certTTL   time.Duration
	deadAfter time.Duration
	grace     time.Duration

	mu sync.Mutex
	cp *tls.Certificate // this control plane's, reissued before expiry
}

// NewLink returns a Link.
func NewLink(c LinkConfig) *Link {
	if c.CertTTL <= 0 {
		c.CertTTL = DefaultCertTTL
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = DefaultDeadAfter
	}
	if c.MissingGrace <= 0 {
		c.MissingGrace = DefaultMissingGrace
	}
	return &Link{st: c.Store, reg: c.Registry, ca: c.CA, now: c.Now, log: c.Logger, certTTL: c.CertTTL, deadAfter: c.DeadAfter,
		grace: c.MissingGrace}
}

// CA is the fleet's CA.
func (l *Link) CA() *CA { return l.ca }

// DeadAfter is how long a host may be silent before it is unreachable.
func (l *Link) DeadAfter() time.Duration { return l.deadAfter }

// RegisterRequest is what an agent registers with.
type RegisterRequest struct {
	Token string
	CSR   []byte // PEM
	Specs wrenn.HostSpecs
}

// Issued is a certificate given to an agent.
type Issued struct {
	CertPEM  []byte
	CAPEM    []byte
	NotAfter time.Time
}

func validSpecs(s wrenn.HostSpecs) error {
	host, port, err := net.SplitHostPort(s.Address)
	if err != nil || host == "" || port == "" {
		return wrenn.Errorf(wrenn.EInvalid, "address must be the agent's host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return wrenn.Errorf(wrenn.EInvalid, "address must be the agent's host:port")
	}
	if s.CPUCores < 0 || s.MemoryMB < 0 || s.DiskGB < 0 {
		return wrenn.Errorf(wrenn.EInvalid, "cpu_cores, memory_mb and disk_gb must not be negative")
	}
	if err := validCapacity(s.Capacity); err != nil {
		return err
	}
	return validLabel("arch", s.Arch)
}

// validCapacity checks what an agent reports it admits; nil is none.
func validCapacity(c *wrenn.HostCapacity) error {
	if c != nil && (c.VCPUs < 0 || c.MemoryMB < 0) {
		return wrenn.Errorf(wrenn.EInvalid, "capacity_vcpus and capacity_memory_mb must not be negative")
	}
	return nil
}

// Register registers the pending host a registration token was issued
// for: it certifies the CSR's key as that host's agent, records the specs,
// marks the host online and uses the token up. A bad, used or expired
// token is EUnauthorized.
func (l *Link) Register(ctx context.Context, req RegisterRequest) (*wrenn.Host, *Issued, error) {
	h, err := l.reg.TokenHost(ctx, req.Token)
	if err != nil {
		return nil, nil, err
	}
	if err := validSpecs(req.Specs); err != nil {
		return nil, nil, err
	}
	now := l.now().UTC()
	cert, err := l.ca.SignHostCSR(req.CSR, h.ID, now, now.Add(l.certTTL))
	if err != nil {
		return nil, nil, err
	}
	h, err = l.st.RegisterHost(ctx, h.ID, HashToken(req.Token), req.Specs,
		wrenn.HostCertificate{Serial: SerialHex(cert), HostID: h.ID, NotAfter: cert.NotAfter, CreatedAt: now}, now)
	if err != nil {
		return nil, nil, err
	}
	l.log.InfoContext(ctx, "host registered", slog.String(attrHostID, h.ID), slog.String("address", h.Address),
		slog.String("serial", SerialHex(cert)), slog.Time("not_after", cert.NotAfter), slog.Any("capacity", h.Capacity))
	return h, l.issued(cert), nil
}

func (l *Link) issued(c *x509.Certificate) *Issued {
	return &Issued{CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), CAPEM: l.ca.CertPEM(), NotAfter: c.NotAfter}
}

var errBadCert = wrenn.Errorf(wrenn.EUnauthorized, "a valid host certificate is required")

// AuthenticateAgent returns the host a peer's certificates (leaf first)
// prove to be: the leaf chains to the CA and is valid now, names a host,
// is recorded as given to that host and not revoked, and the host exists
// and is registered. Anything else is EUnauthorized.
func (l *Link) AuthenticateAgent(ctx context.Context, certs []*x509.Certificate) (string, error) {
	leaf, uri, err := VerifyPeer(certs, l.ca.Pool(), l.now(), x509.ExtKeyUsageClientAuth)
	if err != nil {
		return "", wrenn.Errorf(wrenn.EUnauthorized, "host certificate: %v", err)
	}
	return l.checkAgent(ctx, leaf, uri)
}

// checkAgent checks a verified agent certificate against the store.
func (l *Link) checkAgent(ctx context.Context, leaf *x509.Certificate, uri string) (string, error) {
	id := HostOfURI(uri)
	if id == "" {
		return "", errBadCert
	}
	rec, err := l.st.HostCertificate(ctx, SerialHex(leaf))
	if wrenn.ErrorCode(err) == wrenn.ENotFound {
		return "", wrenn.Errorf(wrenn.EUnauthorized, "host certificate is not known")
	}
	if err != nil {
		return "", err
	}
	if rec.HostID != id {
		return "", errBadCert
	}
	if rec.RevokedAt != nil {
		return "", wrenn.Errorf(wrenn.EUnauthorized, "host certificate is revoked")
	}
	h, err := l.st.GetHost(ctx, id)
	if wrenn.ErrorCode(err) == wrenn.ENotFound {
		return "", wrenn.Errorf(wrenn.EUnauthorized, "host no longer exists")
	}
	if err != nil {
		return "", err
	}
	if h.Status == wrenn.HostPending {
		return "", wrenn.Errorf(wrenn.EUnauthorized, "host is not registered")
	}
	return id, nil
}

// Renew certifies a new CSR's key for an authenticated agent (hostID is
// what AuthenticateAgent returned), with a fresh lifetime.
func (l *Link) Renew(ctx context.Context, hostID string, csr []byte) (*Issued, error) {
	now := l.now().UTC()
	cert, err := l.ca.SignHostCSR(csr, hostID, now, now.Add(l.certTTL))
	if err != nil {
		return nil, err
	}
	if err := l.st.AddHostCertificate(ctx, wrenn.HostCertificate{Serial: SerialHex(cert), HostID: hostID, NotAfter: cert.NotAfter, CreatedAt: now}); err != nil {
		return nil, err
	}
	l.log.InfoContext(ctx, "host certificate renewed", slog.String(attrHostID, hostID), slog.String("serial", SerialHex(cert)),
		slog.Time("not_after", cert.NotAfter))
	return l.issued(cert), nil
}

// Heartbeat records that an authenticated agent is alive, and what it
// reports it admits now (nil: an agent that does not say, for which
// placement assumes the default admission).
func (l *Link) Heartbeat(ctx context.Context, hostID string, capacity *wrenn.HostCapacity) (*wrenn.Host, error) {
	if err := validCapacity(capacity); err != nil {
		return nil, err
	}
	before, err := l.st.GetHost(ctx, hostID)
	if err != nil {
		return nil, err
	}
	h, err := l.st.HostHeartbeat(ctx, hostID, l.now(), capacity)
	if err != nil {
		return nil, err
	}
	if before.Status != h.Status {
		l.log.InfoContext(ctx, "host back online", slog.String(attrHostID, hostID), slog.String("was", string(before.Status)))
	}
	if !sameCapacity(before.Capacity, h.Capacity) {
		l.log.InfoContext(ctx, "host capacity changed", slog.String(attrHostID, hostID), slog.Any("was", before.Capacity),
			slog.Any("now", h.Capacity))
	}
	return h, nil
}

func sameCapacity(a, b *wrenn.HostCapacity) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// CheckHeartbeats marks unreachable every online host silent for longer
// than DeadAfter, once, and returns their IDs; then the running sandboxes
// of unreachable hosts missing, and those missing for MissingGrace error
// (checkLoss, loss.go). It is one pass of the
// background check: Run repeats it; several control planes may each run it
// (the marking is idempotent), or a lease may wrap it so that one does.
func (l *Link) CheckHeartbeats(ctx context.Context) ([]string, error) {
	now := l.now()
	ids, err := l.st.MarkHostsUnreachable(ctx, now.Add(-l.deadAfter), now)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		l.log.WarnContext(ctx, "host unreachable: no heartbeat", slog.String(attrHostID, id), slog.Duration("dead_after", l.deadAfter))
	}
	return ids, l.checkLoss(ctx, now)
}

// RunHeartbeatCheck runs CheckHeartbeats every interval until ctx ends.
func (l *Link) RunHeartbeatCheck(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := l.CheckHeartbeats(ctx); err != nil && ctx.Err() == nil {
				l.log.ErrorContext(ctx, "heartbeat check", slog.Any("error", err))
			}
		}
	}
}

// controlPlaneCert returns this control plane's certificate, issuing a
// new one when less than a third of its life is left. The key is made
// here and never stored.
func (l *Link) controlPlaneCert() (*tls.Certificate, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.cp != nil && l.cp.Leaf.NotAfter.Sub(now) > l.certTTL/3 {
		return l.cp, nil
	}
	c, err := l.ca.ControlPlaneCert(now, now.Add(l.certTTL))
	if err != nil {
		return nil, err
	}
	l.cp = c
	return c, nil
}

// ListenerTLS is the TLS configuration of the control plane's fleet
// listener: it presents the control plane's certificate and asks agents
// for theirs, which the handlers check (AuthenticateAgent) where they need
// one; registration needs none.
func (l *Link) ListenerTLS() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return l.controlPlaneCert() },
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// AgentTLS is the TLS configuration the control plane dials host id's
// agent with: it presents the control plane's certificate, and admits
// only a certificate of the CA naming that host, recorded and not revoked,
// of a host still registered.
func (l *Link) AgentTLS(id string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The agent's certificate is verified below, by identity: agents
		// are not certified for hostnames.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return l.controlPlaneCert()
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			leaf, uri, err := VerifyPeer(cs.PeerCertificates, l.ca.Pool(), l.now(), x509.ExtKeyUsageServerAuth)
			if err != nil {
				return fmt.Errorf("agent certificate: %w", err)
			}
			if uri != HostURI(id) {
				return fmt.Errorf("agent certificate names %s, not host %s", uri, id)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = l.checkAgent(ctx, leaf, uri)
			return err
		},
	}
}

// DialAgent returns a client of host id's agent, over mutual TLS at the
// address it registered. Every new connection is checked (AgentTLS).
func (l *Link) DialAgent(ctx context.Context, id string) (*agentrpc.Client, error) {
	h, err := l.st.GetHost(ctx, id)
	if err != nil {
		return nil, err
	}
	if h.Status == wrenn.HostPending || h.Address == "" {
		return nil, wrenn.Errorf(wrenn.EConflict, "host %s has not registered", id)
	}
	return agentrpc.DialTLS(h.Address, l.AgentTLS(id)), nil
}

// AgentServerTLS is the TLS configuration of a joined agent's RPC server:
// it presents the agent's certificate (cert is asked on every handshake,
// so a renewed one takes over) and admits only a client certificate of
// the CA in roots with the control plane's identity, valid at now().
func AgentServerTLS(cert func() *tls.Certificate, roots *x509.CertPool, now func() time.Time) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.RequireAnyClientCert, // verified below, by identity
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert(), nil },
		NextProtos:     []string{"h2"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyControlPlane(cs, roots, now(), x509.ExtKeyUsageClientAuth)
		},
	}
}

// AgentClientTLS is the TLS configuration a joined agent reaches the
// control plane's fleet listener with: it presents the agent's
// certificate (nil before registration) and admits only the control
// plane's identity from the CA in roots. With roots nil (before
// registration), pin, if not "", is the SHA-256 (hex) the CA in the
// server's chain must have; with neither, the server is trusted on first
// use, and seen (if not nil) gets its certificates to check against the
// CA registration returns.
func AgentClientTLS(cert func() *tls.Certificate, roots *x509.CertPool, pin string, now func() time.Time, seen func([]*x509.Certificate)) *tls.Config {
	pin = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(pin)), "sha256:")
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // verified below, by identity
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := cert(); c != nil {
				return c, nil
			}
			return &tls.Certificate{}, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if seen != nil {
				seen(cs.PeerCertificates)
			}
			r := roots
			if r == nil && pin != "" && len(cs.PeerCertificates) > 1 {
				for _, c := range cs.PeerCertificates[1:] {
					if Fingerprint(c) == pin {
						r = x509.NewCertPool()
						r.AddCert(c)
					}
				}
			}
			if r == nil && pin != "" {
				return errors.New("the control plane's CA does not have the pinned SHA-256")
			}
			if r == nil {
				return nil
			}
			return verifyControlPlane(cs, r, now(), x509.ExtKeyUsageServerAuth)
		},
	}
}

func verifyControlPlane(cs tls.ConnectionState, roots *x509.CertPool, now time.Time, usage x509.ExtKeyUsage) error {
	_, uri, err := VerifyPeer(cs.PeerCertificates, roots, now, usage)
	if err != nil {
		return fmt.Errorf("control plane certificate: %w", err)
	}
	if uri != ControlPlaneURI {
		return fmt.Errorf("peer is %s, not the control plane", uri)
	}
	return nil
}
