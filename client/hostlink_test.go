package client_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/client"
	"github.com/wrennhq/wrenn/internal/fleet"
	"github.com/wrennhq/wrenn/internal/httpapi"
	"github.com/wrennhq/wrenn/internal/spectest"
)

// TestHostLink drives the agent link's operations through the client, on
// a fleet listener over real TLS: registration, heartbeats and renewal.
func TestHostLink(t *testing.T) {
	e := newEnv(t, fakeHost())
	ctx := context.Background()
	anon := e.client()
	s, err := anon.Signup(ctx, "root@example.com", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	admin := anon.With(client.WithToken(s.Token))
	created, err := admin.CreateHost(ctx, client.CreateHostRequest{Type: client.HostRegular})
	if err != nil {
		t.Fatal(err)
	}
	other, err := admin.CreateHost(ctx, client.CreateHostRequest{Type: client.HostRegular})
	if err != nil {
		t.Fatal(err)
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ca, err := fleet.LoadCA(ctx, e.db, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	link := fleet.NewLink(fleet.LinkConfig{Store: e.db, Registry: fleet.New(fleet.Config{Hosts: e.db, Roles: e.db, Now: time.Now, Logger: log}),
		CA: ca, Now: time.Now, Logger: log})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: httpapi.NewFleetHandler(link, log), TLSConfig: link.ListenerTLS()}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })

	// An agent's client: its certificate once it has one, trusting the
	// control plane of the CA.
	agent := func(cert *tls.Certificate) *client.Client {
		cfg := fleet.AgentClientTLS(func() *tls.Certificate { return cert }, ca.Pool(), "", time.Now, nil)
		base := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
		c, err := client.New("https://"+ln.Addr().String(), client.WithHTTPClient(&http.Client{
			Transport: coverTransport{t, spectest.Transport(t, base)}}))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	register := func(token string) (*client.RegisteredHost, *tls.Certificate, error) {
		keyPEM, csrPEM, err := fleet.NewKeyCSR()
		if err != nil {
			t.Fatal(err)
		}
		reg, err := agent(nil).RegisterHost(ctx, client.RegisterHostRequest{Token: token, Arch: "aarch64", CPUCores: 2,
			MemoryMB: 4096, DiskGB: 20, Address: "10.1.2.3:7070", CSR: string(csrPEM)})
		if err != nil {
			return nil, nil, err
		}
		cert, err := tls.X509KeyPair([]byte(reg.Certificate), keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return reg, &cert, nil
	}

	_, _, err = register("wrh_nope")
	wantCode(t, err, 401, client.CodeUnauthorized)
	reg, cert, err := register(created.RegistrationToken)
	if err != nil {
		t.Fatal(err)
	}
	if reg.Host.ID != created.Host.ID || reg.Host.Status != client.HostOnline || *reg.Host.Arch != "aarch64" ||
		*reg.Host.Address != "10.1.2.3:7070" || time.Until(reg.ExpiresAt) < 6*24*time.Hour {
		t.Fatalf("registered %+v", reg)
	}
	_, _, err = register(created.RegistrationToken)
	wantCode(t, err, 401, client.CodeUnauthorized)

	c := agent(cert)
	if err := c.HostHeartbeat(ctx, reg.Host.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.HostHeartbeat(ctx, other.Host.ID), 403, client.CodeForbidden)
	wantCode(t, agent(nil).HostHeartbeat(ctx, reg.Host.ID), 401, client.CodeUnauthorized)

	_, csrPEM, err := fleet.NewKeyCSR()
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := c.RenewHostCertificate(ctx, reg.Host.ID, string(csrPEM))
	if err != nil {
		t.Fatal(err)
	}
	if renewed.CACertificate != reg.CACertificate || renewed.Certificate == reg.Certificate {
		t.Fatalf("renewed %+v", renewed)
	}
	_, err = c.RenewHostCertificate(ctx, reg.Host.ID, "not a csr")
	wantCode(t, err, 400, client.CodeInvalid)
	_, err = c.RenewHostCertificate(ctx, other.Host.ID, string(csrPEM))
	wantCode(t, err, 403, client.CodeForbidden)

	h, err := admin.GetHost(ctx, reg.Host.ID)
	if err != nil || h.Status != client.HostOnline || h.LastHeartbeatAt == nil {
		t.Fatalf("host after heartbeats: %+v, %v", h, err)
	}

	// Revoked: the agent is refused at once, and joins again only with a
	// new token.
	alice, err := anon.Signup(ctx, "alice@example.com", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	_, err = anon.With(client.WithToken(alice.Token)).RevokeHost(ctx, reg.Host.ID)
	wantCode(t, err, 404, client.CodeNotFound)
	h, err = admin.RevokeHost(ctx, reg.Host.ID)
	if err != nil || h.Status != client.HostPending {
		t.Fatalf("revoked host: %+v, %v", h, err)
	}
	wantCode(t, c.HostHeartbeat(ctx, reg.Host.ID), 401, client.CodeUnauthorized)
	_, err = c.RenewHostCertificate(ctx, reg.Host.ID, string(csrPEM))
	wantCode(t, err, 401, client.CodeUnauthorized)
	fresh, err := admin.RegenerateHostToken(ctx, reg.Host.ID)
	if err != nil {
		t.Fatal(err)
	}
	again, cert2, err := register(fresh.RegistrationToken)
	if err != nil || again.Host.Status != client.HostOnline {
		t.Fatalf("joined again: %+v, %v", again, err)
	}
	if err := agent(cert2).HostHeartbeat(ctx, reg.Host.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.HostHeartbeat(ctx, reg.Host.ID), 401, client.CodeUnauthorized)
}
