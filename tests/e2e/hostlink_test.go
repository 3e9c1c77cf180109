package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/agentrpc"
	"github.com/wrennhq/wrenn/internal/fleet"
	"github.com/wrennhq/wrenn/internal/store"
)

// The agent link (issue 13): a real `wrenn server` with a fleet listener
// and a real `wrenn agent --join`.

var (
	fleetListenLine = regexp.MustCompile(`wrenn fleet listening.* ca_sha256=([0-9a-f]{64})`)
	joinedLine      = regexp.MustCompile(`wrenn agent listening.* addr=(\S+)`)
)

// freeAddr returns a loopback address no one listens on (yet).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startJoined runs `wrenn agent` with args on dataDir and waits until it
// serves; an agent that exits first fails the test unless wantExit, when
// its log is returned instead.
func startJoined(t *testing.T, dataDir string, wantExit bool, args ...string) (*agentProc, string) {
	t.Helper()
	images := requireVMs(t)
	cmd := exec.Command(wrennBin, append([]string{"agent", "--data-dir", dataDir}, args...)...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), envImagesDir+"="+images, "WRENN_SOURCE_DIR="+repoRoot(), "WRENN_HEARTBEAT_INTERVAL=1s")
	a, addr := launchAgent(t, cmd, joinedLine)
	t.Cleanup(a.stop)
	select {
	case a.addr = <-addr:
		if wantExit {
			t.Fatalf("wrenn agent %v serves, want it refused\n%s", args, a.logs)
		}
	case err := <-a.done:
		a.exited = true
		if !wantExit {
			t.Fatalf("wrenn agent exited: %v\n%s", err, a.logs)
		}
		if err == nil {
			t.Fatalf("wrenn agent %v exited 0, want a failure\n%s", args, a.logs)
		}
	case <-time.After(10 * time.Minute):
		t.Fatalf("wrenn agent did not listen\n%s", a.logs)
	}
	return a, a.logs.String()
}

// TestAgentJoin: an agent joins with its host's token (not with a bad one,
// nor with a pin of another CA), its host goes online with its specs,
// `kill -9` makes it unreachable within 10 s, and restarted without a
// token it reuses its credentials and is online again.
func TestAgentJoin(t *testing.T) {
	requireVMs(t)
	fleetAddr, agentAddr := freeAddr(t), freeAddr(t)
	srvData := shortTempDir(t)
	s := startServer(t, srvData, "WRENN_AGENT_ADDR=none", "WRENN_FLEET_LISTEN="+fleetAddr, "WRENN_HOST_DEAD_AFTER=8s")
	pin := fleetCA(t, s)
	var admin session
	s.must(201, "POST", "/v1/auth/signup", nil, map[string]string{"email": "admin@example.com", "password": "sandbox-tests"}, &admin)
	var created struct {
		Host struct {
			ID string `json:"id"`
		} `json:"host"`
		Token string `json:"registration_token"`
	}
	s.must(201, "POST", "/v1/hosts", bearer(admin.Token), map[string]string{"type": "regular"}, &created)
	join := "https://" + fleetAddr
	dataDir := shortTempDir(t)
	t.Cleanup(func() { killVMs(t, dataDir) })

	// Refused: a bad token, and a control plane whose CA is not the pinned one.
	_, logs := startJoined(t, dataDir, true, "--listen", agentAddr, "--join", join, "--token", "wrh_"+strings.Repeat("0", 64))
	if !strings.Contains(logs, "invalid or expired registration token") {
		t.Fatalf("a bad token's refusal does not say why:\n%s", logs)
	}
	_, logs = startJoined(t, dataDir, true, "--listen", agentAddr, "--join", join, "--token", created.Token, "--ca-sha256", strings.Repeat("ab", 32))
	if !strings.Contains(logs, "pinned SHA-256") {
		t.Fatalf("a wrong pin's refusal does not say why:\n%s", logs)
	}

	type host struct {
		Status   string  `json:"status"`
		Address  *string `json:"address"`
		Arch     *string `json:"arch"`
		CPUCores *int    `json:"cpu_cores"`
		MemoryMB *int    `json:"memory_mb"`
	}
	get := func() host {
		var h host
		s.must(200, "GET", "/v1/hosts/"+created.Host.ID, bearer(admin.Token), nil, &h)
		return h
	}
	waitFor := func(status string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < within {
			if get().Status == status {
				return time.Since(start)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("host is %s %v after, want %s\nserver:\n%s", get().Status, within, status, s.logs)
		return 0
	}
	if h := get(); h.Status != "pending" {
		t.Fatalf("the refused agents changed the host: %+v", h)
	}

	agent, _ := startJoined(t, dataDir, false, "--listen", agentAddr, "--join", join, "--token", created.Token, "--ca-sha256", pin)
	// Online from registration; a start slower than the dead time may have
	// made it unreachable until the first heartbeat.
	waitFor("online", 10*time.Second)
	h := get()
	if h.Status != "online" || h.Address == nil || *h.Address != agentAddr || h.Arch == nil || h.CPUCores == nil || *h.CPUCores < 1 || h.MemoryMB == nil || *h.MemoryMB < 1 {
		t.Fatalf("joined host %+v", h)
	}
	for _, f := range []string{"agent.key", "agent.crt", "ca.crt", "host.json"} {
		fi, err := os.Stat(dataDir + "/fleet/" + f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("credential %s: %v, %v", f, fi, err)
		}
	}
	// Its RPC answers no one but a control plane of its CA: not a TLS
	// client without a certificate, nor the old mode's bearer token.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := agentrpc.DialTLS(agentAddr, &tls.Config{InsecureSkipVerify: true}).Info(ctx); err == nil {
		t.Fatal("a joined agent answered a client without a certificate")
	}
	if _, err := agentrpc.Dial(agentAddr, "any-token").Info(ctx); err == nil {
		t.Fatal("a joined agent answered plaintext with a bearer token")
	}
	// A control plane of the fleet's CA (read from the server's store, as
	// a second control plane on the same database would) reaches it over
	// mutual TLS, and it answers as its host.
	db, err := store.Open(ctx, store.Config{SQLitePath: filepath.Join(srvData, "wrenn.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ca, err := fleet.LoadCA(ctx, db, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	link := fleet.NewLink(fleet.LinkConfig{Store: db, Registry: fleet.New(fleet.Config{Hosts: db, Roles: db, Now: time.Now, Logger: quiet}),
		CA: ca, Now: time.Now, Logger: quiet})
	if fleet.Fingerprint(mustCert(t, ca.CertPEM())) != pin {
		t.Fatal("the store's CA is not the one the server logged")
	}
	rpc, err := link.DialAgent(ctx, created.Host.ID)
	if err != nil {
		t.Fatal(err)
	}
	info, err := rpc.Info(ctx)
	if err != nil || info.ID != created.Host.ID {
		t.Fatalf("the joined agent's Info: %+v, %v", info, err)
	}
	// Heartbeats keep it online past the dead time.
	time.Sleep(9 * time.Second)
	if st := get().Status; st != "online" {
		t.Fatalf("a heartbeating host is %s\nagent:\n%s", st, agent.logs)
	}

	agent.kill()
	took := waitFor("unreachable", 10*time.Second)
	t.Logf("host unreachable %v after kill -9", took)

	// Restarted without a token: its credentials suffice.
	agent, _ = startJoined(t, dataDir, false, "--listen", agentAddr)
	waitFor("online", 10*time.Second)
	agent.stop()
}

func mustCert(t *testing.T, pemData []byte) *x509.Certificate {
	t.Helper()
	c, err := fleet.ParseCertPEM(pemData)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
