package fleet_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/client"
	"github.com/wrennhq/wrenn/internal/agentrpc"
	"github.com/wrennhq/wrenn/internal/fleet"
	"github.com/wrennhq/wrenn/internal/httpapi"
	"github.com/wrennhq/wrenn/internal/mock"
)

// The agent link over real TLS and real HTTP, on a real store: the
// control plane's fleet listener, and agents' RPC servers serving a fake
// host.

const testCertTTL = time.Hour

type linkFixture struct {
	*fixture
	link *fleet.Link
	url  string // the fleet listener
}

func newLinkFixture(t *testing.T) *linkFixture {
	t.Helper()
	f := &linkFixture{fixture: newFixture(t)}
	f.clock.now = time.Now() // certificates are checked against both clocks
	ca, err := fleet.LoadCA(t.Context(), f.db, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	f.link = fleet.NewLink(fleet.LinkConfig{Store: f.db, Registry: f.svc, CA: ca, Now: f.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), CertTTL: testCertTTL, DeadAfter: 10 * time.Second})
	f.url = serveTLS(t, httpapi.NewFleetHandler(f.link, slog.New(slog.NewTextHandler(io.Discard, nil))), f.link.ListenerTLS())
	return f
}

// serveTLS serves h with cfg on a loopback port and returns its URL.
func serveTLS(t *testing.T, h http.Handler, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveTLSOn(t, ln, h, cfg)
}

// serveTLSOn serves h with cfg on ln and returns its URL.
func serveTLSOn(t *testing.T, ln net.Listener, h http.Handler, cfg *tls.Config) string {
	t.Helper()
	srv := &http.Server{Handler: h, TLSConfig: cfg, ErrorLog: slogDiscard()}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}

func slogDiscard() *stdlog.Logger {
	return slog.NewLogLogger(slog.New(slog.NewTextHandler(io.Discard, nil)).Handler(), slog.LevelError)
}

// agentCreds is what an agent holds after registering.
type agentCreds struct {
	hostID string
	cert   *tls.Certificate
	roots  *x509.CertPool
}

// fleetClient is an agent's client of the fleet listener, presenting cert
// (none if nil) and trusting the control plane on first use.
func (f *linkFixture) fleetClient(t *testing.T, cert *tls.Certificate) *client.Client {
	t.Helper()
	cfg := fleet.AgentClientTLS(func() *tls.Certificate { return cert }, nil, "", time.Now, nil)
	c, err := client.New(f.url, client.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newHost creates a pending host and returns its registration token.
func (f *linkFixture) newHost(t *testing.T) (*wrenn.Host, string) {
	t.Helper()
	h, token, err := f.svc.Create(t.Context(), f.admin, fleet.CreateRequest{Type: wrenn.HostRegular})
	if err != nil {
		t.Fatal(err)
	}
	return h, token
}

// register registers an agent with token, advertising addr.
func (f *linkFixture) register(t *testing.T, token, addr string) (*client.RegisteredHost, *agentCreds, error) {
	t.Helper()
	keyPEM, csrPEM, err := fleet.NewKeyCSR()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := f.fleetClient(t, nil).RegisterHost(t.Context(), client.RegisterHostRequest{Token: token, Arch: "x86_64", CPUCores: 4,
		MemoryMB: 8192, DiskGB: 50, Address: addr, CSR: string(csrPEM)})
	if err != nil {
		return nil, nil, err
	}
	cert, err := tls.X509KeyPair([]byte(reg.Certificate), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := fleet.ParseCertPEM([]byte(reg.CACertificate))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return reg, &agentCreds{hostID: reg.Host.ID, cert: &cert, roots: roots}, nil
}

func wantAPIError(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	apiErr, ok := errors.AsType[*client.Error](err)
	if !ok || apiErr.Status != status || apiErr.Code != code || apiErr.Message == "" {
		t.Fatalf("%s: %v, want %d %s in the envelope", what, err, status, code)
	}
}

// TestRegister: only a pending host's current, unexpired token registers,
// once; registration records the specs and certifies the agent's key as
// that host.
func TestRegister(t *testing.T) {
	f := newLinkFixture(t)
	ctx := t.Context()
	h, token := f.newHost(t)

	for name, tok := range map[string]string{"empty": "", "garbage": "nope", "wrong": fleet.TokenPrefix + strings.Repeat("0", 64)} {
		_, _, err := f.register(t, tok, "10.0.0.9:7070")
		wantAPIError(t, name+" token", err, http.StatusUnauthorized, wrenn.EUnauthorized)
	}
	// A bad CSR or address is refused without using the token up.
	_, err := f.fleetClient(t, nil).RegisterHost(ctx, client.RegisterHostRequest{Token: token, Address: "10.0.0.9:7070", CSR: "not a csr"})
	wantAPIError(t, "bad csr", err, http.StatusBadRequest, wrenn.EInvalid)
	_, _, err = f.register(t, token, "no-port")
	wantAPIError(t, "bad address", err, http.StatusBadRequest, wrenn.EInvalid)

	reg, creds, err := f.register(t, token, "10.0.0.9:7070")
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	got := reg.Host
	if got.ID != h.ID || got.Status != client.HostOnline || *got.Arch != "x86_64" || *got.CPUCores != 4 || *got.MemoryMB != 8192 ||
		*got.DiskGB != 50 || *got.Address != "10.0.0.9:7070" || got.LastHeartbeatAt == nil {
		t.Fatalf("registered host %+v", got)
	}
	leaf := creds.cert.Leaf
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != fleet.HostURI(h.ID) || !reg.ExpiresAt.Equal(leaf.NotAfter) {
		t.Fatalf("certificate names %v, expires %v (answer says %v)", leaf.URIs, leaf.NotAfter, reg.ExpiresAt)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: creds.roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("certificate does not chain to the CA: %v", err)
	}
	if stored, _ := f.svc.Get(ctx, f.admin, h.ID); stored.Status != wrenn.HostOnline {
		t.Fatalf("stored host is %s", stored.Status)
	}

	// Used up.
	_, _, err = f.register(t, token, "10.0.0.9:7070")
	wantAPIError(t, "used token", err, http.StatusUnauthorized, wrenn.EUnauthorized)

	// Expired.
	_, late := f.newHost(t)
	f.clock.Add(fleet.DefaultTokenTTL)
	_, _, err = f.register(t, late, "10.0.0.9:7070")
	wantAPIError(t, "expired token", err, http.StatusUnauthorized, wrenn.EUnauthorized)
}

// rpcHost is a fake host agent's machine.
type rpcHost struct {
	*mock.Agent
	id string
}

func (h rpcHost) Info(context.Context) (*wrenn.HostInfo, error) {
	return &wrenn.HostInfo{ID: h.id}, nil
}

// serveAgent serves a fake host's RPC as a joined agent does, with cert,
// admitting the control plane of roots, on a port of its own; it returns
// its address.
func serveAgent(t *testing.T, cert *tls.Certificate, roots *x509.CertPool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveAgentOn(t, ln, cert, roots)
}

// serveAgentOn is serveAgent on ln.
func serveAgentOn(t *testing.T, ln net.Listener, cert *tls.Certificate, roots *x509.CertPool) string {
	t.Helper()
	h := rpcHost{Agent: &mock.Agent{ListSandboxesFn: func(context.Context) ([]wrenn.SandboxState, error) {
		return []wrenn.SandboxState{{ID: "sb-1", Running: true}}, nil
	}}, id: "fake"}
	u := serveTLSOn(t, ln, agentrpc.NewTLSHandler(h), fleet.AgentServerTLS(func() *tls.Certificate { return cert }, roots, time.Now))
	return strings.TrimPrefix(u, "https://")
}

// joined registers a host and serves its agent at the address it
// registered.
func (f *linkFixture) joined(t *testing.T) *agentCreds {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, token := f.newHost(t)
	_, creds, err := f.register(t, token, ln.Addr().String())
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	serveAgentOn(t, ln, creds.cert, creds.roots)
	return creds
}

// call is the control plane's call of host id's agent on a new
// connection, through DialAgent.
func (f *linkFixture) call(t *testing.T, id string) error {
	t.Helper()
	c, err := f.link.DialAgent(t.Context(), id)
	if err != nil {
		return err
	}
	got, err := c.ListSandboxes(t.Context())
	if err == nil && (len(got) != 1 || got[0].ID != "sb-1") {
		t.Fatalf("the agent answered %v", got)
	}
	return err
}

// TestAgentRefusesImpostors: a joined agent's RPC answers the control
// plane, and refuses a caller without a certificate, with one of another
// CA (a control plane impostor), and with an agent's certificate.
func TestAgentRefusesImpostors(t *testing.T) {
	f := newLinkFixture(t)
	ctx := t.Context()
	creds := f.joined(t)
	h, err := f.db.GetHost(ctx, creds.hostID)
	if err != nil {
		t.Fatal(err)
	}
	addr := h.Address

	// The control plane's own call, at the host's registered address.
	if err := f.call(t, creds.hostID); err != nil {
		t.Fatalf("the control plane's call: %v", err)
	}

	// An impostor: a control plane of its own CA, with a certificate of
	// the control plane's identity; it even trusts the agent.
	otherPEM, otherKey, err := fleet.NewCAPEM(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, err := fleet.ParseCA([]byte(otherPEM), []byte(otherKey))
	if err != nil {
		t.Fatal(err)
	}
	impostorCert, err := other.ControlPlaneCert(time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// An agent of this fleet calling another agent.
	peer := f.joined(t)
	for name, cert := range map[string]*tls.Certificate{"no certificate": nil, "another CA's control plane": impostorCert, "an agent's certificate": peer.cert} {
		cfg := &tls.Config{InsecureSkipVerify: true, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if cert == nil {
				return &tls.Certificate{}, nil
			}
			return cert, nil
		}}
		if got, err := agentrpc.DialTLS(addr, cfg).ListSandboxes(ctx); err == nil {
			t.Errorf("%s: the agent answered %v", name, got)
		}
	}
}

// TestControlPlaneRefusesAgents: the control plane's dial of a host admits
// only that host's recorded, unrevoked, unexpired certificate.
func TestControlPlaneRefusesAgents(t *testing.T) {
	f := newLinkFixture(t)
	ctx := t.Context()
	a := f.joined(t)
	b := f.joined(t)
	if err := f.call(t, a.hostID); err != nil {
		t.Fatalf("host A: %v", err)
	}
	// B's agent where A's was meant (as if A's address now led to B).
	hb, _ := f.db.GetHost(ctx, b.hostID)
	if _, err := agentrpc.DialTLS(hb.Address, f.link.AgentTLS(a.hostID)).ListSandboxes(ctx); err == nil {
		t.Fatal("reached host B's agent as host A")
	}
	// An agent serving a certificate of another CA naming host A.
	otherPEM, otherKey, err := fleet.NewCAPEM(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, err := fleet.ParseCA([]byte(otherPEM), []byte(otherKey))
	if err != nil {
		t.Fatal(err)
	}
	fakeKey, fakeCSR, _ := fleet.NewKeyCSR()
	fakeLeaf, err := other.SignHostCSR(fakeCSR, a.hostID, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	fake, err := tls.X509KeyPair(pemCert(fakeLeaf), fakeKey)
	if err != nil {
		t.Fatal(err)
	}
	fakeAddr := serveAgent(t, &fake, other.Pool())
	if _, err := agentrpc.DialTLS(fakeAddr, f.link.AgentTLS(a.hostID)).ListSandboxes(ctx); err == nil {
		t.Fatal("reached an agent certified by another CA as host A")
	}
	// Heartbeats for another host are refused, with B's own taken.
	bc := f.fleetClient(t, b.cert)
	wantAPIError(t, "B's heartbeat as A", bc.HostHeartbeat(ctx, a.hostID), http.StatusForbidden, wrenn.EForbidden)
	if err := bc.HostHeartbeat(ctx, b.hostID); err != nil {
		t.Fatalf("B's heartbeat: %v", err)
	}
	wantAPIError(t, "heartbeat without a certificate", f.fleetClient(t, nil).HostHeartbeat(ctx, b.hostID), http.StatusUnauthorized, wrenn.EUnauthorized)

	// Revoked: host B deleted.
	if _, err := f.svc.Delete(ctx, f.admin, b.hostID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := agentrpc.DialTLS(hb.Address, f.link.AgentTLS(b.hostID)).ListSandboxes(ctx); err == nil {
		t.Fatal("reached a deleted host's agent")
	}
	if _, err := f.link.DialAgent(ctx, b.hostID); wrenn.ErrorCode(err) != wrenn.ENotFound {
		t.Fatalf("DialAgent of a deleted host: %v", err)
	}
	wantAPIError(t, "revoked heartbeat", bc.HostHeartbeat(ctx, b.hostID), http.StatusUnauthorized, wrenn.EUnauthorized)
	_, err = f.link.AuthenticateAgent(ctx, []*x509.Certificate{b.cert.Leaf})
	if err == nil || !strings.Contains(wrenn.ErrorMessage(err), "revoked") {
		t.Fatalf("a deleted host's certificate: %v, want revoked", err)
	}

	// Expired: A's certificate after its lifetime.
	f.clock.Add(testCertTTL + time.Second)
	if err := f.call(t, a.hostID); err == nil {
		t.Fatal("reached an agent whose certificate expired")
	}
	wantAPIError(t, "expired heartbeat", f.fleetClient(t, a.cert).HostHeartbeat(ctx, a.hostID), http.StatusUnauthorized, wrenn.EUnauthorized)
}

// TestRenew: an agent renews its certificate before it expires, and the
// new one is admitted; a revoked agent cannot renew.
func TestRenew(t *testing.T) {
	f := newLinkFixture(t)
	ctx := t.Context()
	a := f.joined(t)
	f.clock.Add(testCertTTL * 3 / 4)
	keyPEM, csrPEM, err := fleet.NewKeyCSR()
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.fleetClient(t, a.cert).RenewHostCertificate(ctx, a.hostID, string(csrPEM))
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	fresh, err := tls.X509KeyPair([]byte(got.Certificate), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !fresh.Leaf.NotAfter.After(a.cert.Leaf.NotAfter) || fresh.Leaf.URIs[0].String() != fleet.HostURI(a.hostID) {
		t.Fatalf("renewed certificate until %v for %v", fresh.Leaf.NotAfter, fresh.Leaf.URIs)
	}
	// Past the old certificate's life, the new one works.
	f.clock.Add(testCertTTL/4 + time.Second)
	if _, err := f.link.AuthenticateAgent(ctx, []*x509.Certificate{a.cert.Leaf}); err == nil {
		t.Fatal("the old certificate outlived its expiry")
	}
	if err := f.fleetClient(t, &fresh).HostHeartbeat(ctx, a.hostID); err != nil {
		t.Fatalf("heartbeat with the renewed certificate: %v", err)
	}
	// Renewing with a garbage CSR is refused.
	_, err = f.fleetClient(t, &fresh).RenewHostCertificate(ctx, a.hostID, "nope")
	wantAPIError(t, "bad csr", err, http.StatusBadRequest, wrenn.EInvalid)

	// Revoked: no renewal.
	if _, err := f.svc.Delete(ctx, f.admin, a.hostID, false); err != nil {
		t.Fatal(err)
	}
	_, err = f.fleetClient(t, &fresh).RenewHostCertificate(ctx, a.hostID, string(csrPEM))
	wantAPIError(t, "revoked renewal", err, http.StatusUnauthorized, wrenn.EUnauthorized)
}

// TestHeartbeats: heartbeats keep a host online; silence for DeadAfter
// makes it unreachable; the next heartbeat brings it back.
func TestHeartbeats(t *testing.T) {
	f := newLinkFixture(t)
	ctx := t.Context()
	a := f.joined(t)
	c := f.fleetClient(t, a.cert)
	status := func() wrenn.HostStatus {
		h, err := f.db.GetHost(ctx, a.hostID)
		if err != nil {
			t.Fatal(err)
		}
		return h.Status
	}
	for range 5 {
		f.clock.Add(4 * time.Second)
		if err := c.HostHeartbeat(ctx, a.hostID); err != nil {
			t.Fatal(err)
		}
		if ids, err := f.link.CheckHeartbeats(ctx); err != nil || len(ids) != 0 {
			t.Fatalf("check after a heartbeat: %v, %v", ids, err)
		}
	}
	f.clock.Add(10 * time.Second)
	if ids, _ := f.link.CheckHeartbeats(ctx); len(ids) != 0 || status() != wrenn.HostOnline {
		t.Fatalf("unreachable at exactly DeadAfter: %v", ids)
	}
	f.clock.Add(time.Millisecond)
	if ids, _ := f.link.CheckHeartbeats(ctx); len(ids) != 1 || ids[0] != a.hostID || status() != wrenn.HostUnreachable {
		t.Fatalf("after DeadAfter of silence: %v, %s", ids, status())
	}
	if err := c.HostHeartbeat(ctx, a.hostID); err != nil {
		t.Fatal(err)
	}
	if status() != wrenn.HostOnline {
		t.Fatalf("after a heartbeat: %s", status())
	}
}

// TestRevoke: revoking a host refuses its agent at once, both ways the
// control plane meets it, and returns the host to pending.
func TestRevoke(t *testing.T) {
	f := newLinkFixture(t)
	ctx := t.Context()
	a := f.joined(t)
	h, _ := f.db.GetHost(ctx, a.hostID)
	addr := h.Address
	if err := f.call(t, a.hostID); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	_, err := f.svc.Revoke(ctx, f.member, a.hostID)
	wantCode(t, "a member's revoke of a regular host", err, wrenn.ENotFound)
	h, err = f.svc.Revoke(ctx, f.admin, a.hostID)
	if err != nil || h.Status != wrenn.HostPending || h.TokenHash != nil {
		t.Fatalf("revoked host %+v, %v", h, err)
	}
	// A new client: revocation is checked on new connections.
	if _, err := agentrpc.DialTLS(addr, f.link.AgentTLS(a.hostID)).ListSandboxes(ctx); err == nil {
		t.Fatal("reached a revoked host's agent")
	}
	wantAPIError(t, "revoked heartbeat", f.fleetClient(t, a.cert).HostHeartbeat(ctx, a.hostID), http.StatusUnauthorized, wrenn.EUnauthorized)
	if _, err := f.link.DialAgent(ctx, a.hostID); wrenn.ErrorCode(err) != wrenn.EConflict {
		t.Fatalf("DialAgent of a pending host: %v", err)
	}
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
