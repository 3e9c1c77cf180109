package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/client"
	"github.com/wrennhq/wrenn/internal/agent"
	"github.com/wrennhq/wrenn/internal/agentrpc"
	"github.com/wrennhq/wrenn/internal/fleet"
	"github.com/wrennhq/wrenn/internal/httpapi"
	"github.com/wrennhq/wrenn/internal/layout"
	"github.com/wrennhq/wrenn/internal/lease"
	"github.com/wrennhq/wrenn/internal/netslot"
	"github.com/wrennhq/wrenn/internal/store"
)

// The agent link (issue 13): the control plane's fleet listener, and
// `wrenn agent --join`.

const (
	envFleetListen       = "WRENN_FLEET_LISTEN"
	envHostDeadAfter     = "WRENN_HOST_DEAD_AFTER"
	envHostCertTTL       = "WRENN_HOST_CERT_TTL"
	envHeartbeatInterval = "WRENN_HEARTBEAT_INTERVAL"
	// Host loss: how long a lost host's sandboxes stay missing.
	envMissingGrace = "WRENN_MISSING_GRACE"
	envLeaseTTL     = "WRENN_LEASE_TTL"
)

// fleetConfig is the control plane's end of the agent link.
type fleetConfig struct {
	// Listen is where agents register and heartbeat (TLS); "" serves no
	// fleet listener, and no agent can join.
	Listen    string
	DeadAfter time.Duration // 0: fleet.DefaultDeadAfter
	CertTTL   time.Duration // 0: fleet.DefaultCertTTL
	// MissingGrace: 0 is fleet.DefaultMissingGrace (host loss).
	MissingGrace time.Duration
	// LeaseTTL is how long a replica's lease on a background job lasts
	// unless renewed (internal/lease); 0: lease.DefaultTTL.
	LeaseTTL time.Duration
}

func (c *fleetConfig) fromEnv(listenSet bool) error {
	if !listenSet {
		c.Listen = os.Getenv(envFleetListen)
	}
	var err error
	if c.DeadAfter, err = envDuration(envHostDeadAfter); err != nil {
		return err
	}
	if c.MissingGrace, err = envDuration(envMissingGrace); err != nil {
		return err
	}
	if c.LeaseTTL, err = envDuration(envLeaseTTL); err != nil {
		return err
	}
	if c.LeaseTTL != 0 && c.LeaseTTL < 300*time.Millisecond {
		return fmt.Errorf("%s must be at least 300ms", envLeaseTTL)
	}
	if v := os.Getenv(envHostCertTTL); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > 366*24*time.Hour {
			return fmt.Errorf("%s=%q: want a duration such as 168h, from 1s to 366 days", envHostCertTTL, v)
		}
		c.CertTTL = d
	}
	return nil
}

// startFleet loads (or makes) the fleet's CA, serves the fleet listener
// and runs the heartbeat check, until ctx ends; stop waits for the
// listener to shut down. With no listener configured it does nothing and
// returns no link.
func startFleet(ctx context.Context, fc fleetConfig, db *store.DB, hosts *fleet.Service, leases *lease.Leases, now func() time.Time, log *slog.Logger) (link *fleet.Link, stop func(), err error) {
	if fc.Listen == "" {
		return nil, func() {}, nil
	}
	ca, err := fleet.LoadCA(ctx, db, now())
	if err != nil {
		return nil, nil, fmt.Errorf("fleet CA: %w", err)
	}
	link = fleet.NewLink(fleet.LinkConfig{Store: db, Registry: hosts, CA: ca, Now: now, Logger: log,
		CertTTL: fc.CertTTL, DeadAfter: fc.DeadAfter, MissingGrace: fc.MissingGrace})
	ln, err := net.Listen("tcp", fc.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("fleet listen: %w", err)
	}
	srv := &http.Server{
		Handler:           httpapi.NewFleetHandler(link, log),
		TLSConfig:         link.ListenerTLS(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug), // failed handshakes of impostors
	}
	log.Info("wrenn fleet listening", slog.String("addr", ln.Addr().String()), slog.String("ca_sha256", ca.Fingerprint()),
		slog.Duration("host_dead_after", link.DeadAfter()), slog.Duration("missing_grace", link.MissingGrace()))
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("fleet listener stopped", slog.Any("error", err))
		}
	})
	// Of several replicas, the one holding the lease checks heartbeats.
	wg.Go(func() {
		leases.Run(ctx, "heartbeat-check", func(ctx context.Context) {
			link.RunHeartbeatCheck(ctx, max(link.DeadAfter()/10, 100*time.Millisecond))
		})
	})
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	return link, func() { cancel(); wg.Wait() }, nil
}

// joinConfig is how `wrenn agent` joins a fleet.
type joinConfig struct {
	// URLs are the fleet listeners of the control plane's replicas,
	// https://host:port each (or one, of a TCP load balancer in front of
	// them); the agent fails over between them.
	URLs      []string
	Token     string // the host's one-time registration token
	CASHA256  string // optional pin of the fleet CA
	Advertise string // the address the control plane dials this agent at
	// Capacity is what the agent admits, reported at registration and in
	// every heartbeat (placement counts the host's sandboxes against
	// it); nil, or a nil answer, reports none.
	Capacity func() *wrenn.HostCapacity
}

// admissionCapacity returns what an agent with admission c admits, as
// joinConfig.Capacity: measured each time (none if this machine cannot
// be measured), so a heartbeat reports the host as it is.
func admissionCapacity(c agent.AdmissionConfig, log *slog.Logger) func() *wrenn.HostCapacity {
	return func() *wrenn.HostCapacity {
		got, err := c.Capacity()
		if err != nil {
			log.Warn("measure this host's capacity", slog.Any("error", err))
			return nil
		}
		return &got
	}
}

// capacityFields are c as the fleet link's JSON has it.
func capacityFields(c *wrenn.HostCapacity) (vcpus, memoryMB *int) {
	if c == nil {
		return nil, nil
	}
	return &c.VCPUs, &c.MemoryMB
}

// credentials are a joined agent's, under its data dir.
type credentials struct {
	dir    string
	HostID string `json:"host_id"`
	// URL is the first of URLs, as credentials written before there were
	// several have it.
	URL string `json:"url"`
	// URLs are the control plane's fleet listeners (issue 13: replicas
	// that can fail), tried in turn.
	URLs []string `json:"urls,omitempty"`

	mu   sync.Mutex
	cert *tls.Certificate
	ca   *x509.CertPool
}

func fleetDir(paths layout.Layout) string { return filepath.Join(paths.Root, "fleet") }

const (
	credKey  = "agent.key"
	credCert = "agent.crt"
	credCA   = "ca.crt"
	credHost = "host.json"
)

// loadCredentials reads a joined agent's credentials; (nil, nil) if it
// never joined.
func loadCredentials(dir string) (*credentials, error) {
	b, err := os.ReadFile(filepath.Join(dir, credHost))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c := &credentials{dir: dir}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("%s: %w", credHost, err)
	}
	if len(c.URLs) == 0 && c.URL != "" {
		c.URLs = []string{c.URL}
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, credCA))
	if err != nil {
		return nil, err
	}
	ca, err := fleet.ParseCertPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", credCA, err)
	}
	c.ca = x509.NewCertPool()
	c.ca.AddCert(ca)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, credCert), filepath.Join(dir, credKey))
	if err != nil {
		return nil, err
	}
	c.cert = &cert
	return c, nil
}

// writeFile0600 writes a file only its owner reads, atomically.
func writeFile0600(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// save stores a certificate and its key (and the CA) as the agent's.
func (c *credentials) save(keyPEM, certPEM, caPEM []byte) error {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	ca, err := fleet.ParseCertPEM(caPEM)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	for name, data := range map[string][]byte{credKey: keyPEM, credCert: certPEM, credCA: caPEM} {
		if err := writeFile0600(filepath.Join(c.dir, name), data); err != nil {
			return err
		}
	}
	if err := c.saveMeta(); err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	c.mu.Lock()
	c.cert, c.ca = &cert, pool
	c.mu.Unlock()
	return nil
}

// saveMeta writes what the credentials say besides keys: the host's ID
// and the control plane's URLs.
func (c *credentials) saveMeta() error {
	if len(c.URLs) > 0 {
		c.URL = c.URLs[0]
	}
	meta, _ := json.Marshal(c)
	return writeFile0600(filepath.Join(c.dir, credHost), meta)
}

// setURLs replaces the control plane's URLs, given again to a joined
// agent's --join, and saves them.
func (c *credentials) setURLs(urls []string) error {
	if slices.Equal(urls, c.URLs) {
		return nil
	}
	c.URLs = urls
	return c.saveMeta()
}

func (c *credentials) current() *tls.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cert
}

func (c *credentials) roots() *x509.CertPool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ca
}

// fleetClient is a client of the fleet listener at url presenting the
// agent's certificate (if any) and checking the control plane's against
// roots (or, with roots nil, pin).
func fleetClient(url string, cert func() *tls.Certificate, roots func() *x509.CertPool, pin string, seen func([]*x509.Certificate)) (*client.Client, error) {
	// roots is read per handshake, so a client made before registration
	// checks the CA it returned from then on.
	cfg := fleet.AgentClientTLS(cert, nil, pin, time.Now, seen)
	verify := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if r := roots(); r != nil {
			return fleet.AgentClientTLS(cert, r, "", time.Now, nil).VerifyConnection(cs)
		}
		return verify(cs)
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second, IdleConnTimeout: time.Minute}
	return client.New(url, client.WithHTTPClient(&http.Client{Transport: tr, Timeout: 30 * time.Second}))
}

// join registers this agent with the host's registration token and saves
// its credentials.
func join(ctx context.Context, dir string, jc joinConfig, paths layout.Layout, log *slog.Logger) (*credentials, error) {
	if jc.Token == "" {
		return nil, errors.New("--token is required to join (the host's registration token, from POST /v1/hosts)")
	}
	keyPEM, csrPEM, err := fleet.NewKeyCSR()
	if err != nil {
		return nil, err
	}
	var seen []*x509.Certificate
	creds := &credentials{dir: dir, URLs: jc.URLs}
	specs := machineSpecs(paths.Root)
	var capacity *wrenn.HostCapacity
	if jc.Capacity != nil {
		capacity = jc.Capacity()
	}
	capVCPUs, capMemory := capacityFields(capacity)
	// The first replica that answers registers the host; one that cannot
	// be reached is passed over, one that refuses is not (the token is
	// the same on every replica).
	var reg *client.RegisteredHost
	for i, u := range jc.URLs {
		c, err := fleetClient(u, func() *tls.Certificate { return nil }, func() *x509.CertPool { return nil }, jc.CASHA256,
			func(cs []*x509.Certificate) { seen = cs })
		if err != nil {
			return nil, err
		}
		reg, err = c.RegisterHost(ctx, client.RegisterHostRequest{Token: jc.Token, Arch: specs.arch, CPUCores: specs.cores,
			MemoryMB: specs.memoryMB, DiskGB: specs.diskGB, Address: jc.Advertise, CSR: string(csrPEM),
			CapacityVCPUs: capVCPUs, CapacityMemoryMB: capMemory})
		if err == nil {
			break
		}
		if _, refused := errors.AsType[*client.Error](err); refused || i == len(jc.URLs)-1 || ctx.Err() != nil {
			return nil, fmt.Errorf("register with %s: %w", u, err)
		}
		log.Warn("register: trying the next control plane", slog.String("url", u), slog.Any("error", err))
	}
	// The control plane that answered must be the CA's: with no pin, this
	// is all the first contact proves.
	ca, err := fleet.ParseCertPEM([]byte(reg.CACertificate))
	if err != nil {
		return nil, fmt.Errorf("the control plane's CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, _, err := fleet.VerifyPeer(seen, pool, time.Now(), x509.ExtKeyUsageServerAuth); err != nil {
		return nil, fmt.Errorf("the control plane's certificate is not of the CA it sent: %w", err)
	}
	if jc.CASHA256 == "" {
		log.Warn("joined without --ca-sha256: the control plane was trusted on first contact", slog.String("ca_sha256", fleet.Fingerprint(ca)))
	}
	creds.HostID = reg.Host.ID
	if err := creds.save(keyPEM, []byte(reg.Certificate), []byte(reg.CACertificate)); err != nil {
		return nil, fmt.Errorf("save credentials: %w", err)
	}
	log.Info("joined the fleet", slog.String("host_id", creds.HostID), slog.Time("certificate_expires_at", reg.ExpiresAt))
	return creds, nil
}

type specs struct {
	arch                    string
	cores, memoryMB, diskGB int
}

// machineSpecs reports this machine as registration records it.
func machineSpecs(dataDir string) specs {
	s := specs{arch: runtime.GOARCH, cores: runtime.NumCPU()}
	switch s.arch {
	case "amd64":
		s.arch = "x86_64"
	case "arm64":
		s.arch = "aarch64"
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
				s.memoryMB = kb / 1024
			}
		}
		f.Close()
	}
	var st syscall.Statfs_t
	if syscall.Statfs(dataDir, &st) == nil {
		s.diskGB = int(st.Blocks * uint64(st.Bsize) >> 30)
	}
	return s
}

// runJoinedAgent runs an agent in a fleet: it joins (or reuses its
// credentials), serves its RPC on mutual TLS, heartbeats and renews its
// certificate until ctx ends.
func runJoinedAgent(ctx context.Context, listen string, jc joinConfig, paths layout.Layout, hc hostConfig, log *slog.Logger) error {
	if err := os.MkdirAll(paths.Root, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	dir := fleetDir(paths)
	if jc.Capacity == nil {
		jc.Capacity = admissionCapacity(hc.Admission, log) // what startHost's admission admits
	}
	creds, err := loadCredentials(dir)
	if err != nil {
		return fmt.Errorf("fleet credentials in %s: %w", dir, err)
	}
	if creds == nil {
		if len(jc.URLs) == 0 {
			return errors.New("this agent has not joined a fleet: give --join URL --token T")
		}
		// A one-time token is not spent on an agent that cannot start.
		if err := netSlotsFromEnv(netslot.Config{}).Check(); err != nil {
			return fmt.Errorf("network: %w", err)
		}
		if jc.Advertise == "" {
			jc.Advertise = listen
		}
		if creds, err = join(ctx, dir, jc, paths, log); err != nil {
			return err
		}
	} else {
		log.Info("reusing fleet credentials", slog.String("host_id", creds.HostID), slog.String("dir", dir))
		// --join again on a joined agent: the control plane's URLs now.
		if len(jc.URLs) > 0 {
			if err := creds.setURLs(jc.URLs); err != nil {
				return fmt.Errorf("save the control plane's URLs: %w", err)
			}
		}
	}
	hc.HostID = creds.HostID // the agent reports its registry ID
	h, err := startHost(ctx, paths, hc, log, os.Stderr)
	if err != nil {
		return err
	}
	defer h.close(context.WithoutCancel(ctx))

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("agent listen: %w", err)
	}
	srv := &http.Server{
		Handler:           agentrpc.NewTLSHandler(h.manager),
		TLSConfig:         fleet.AgentServerTLS(creds.current, creds.ca, time.Now),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	log.Info("wrenn agent listening", slog.String("addr", ln.Addr().String()), slog.String("host_id", creds.HostID), slog.String("tls", "mutual"))
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go heartbeat(ctx, creds, jc.Capacity, log)
	select {
	case err := <-errc:
		return fmt.Errorf("agent serve: %w", err)
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// heartbeat tells the control plane this agent is alive every interval,
// with what it admits (capacity, if not nil), and renews the certificate
// when a third of its life is left. Of several control-plane URLs it uses
// the last that answered, and on a failure tries the others in turn at
// once (issue 13: a replica that dies).
func heartbeat(ctx context.Context, creds *credentials, capacity func() *wrenn.HostCapacity, log *slog.Logger) {
	interval, err := envDuration(envHeartbeatInterval)
	if err != nil || interval == 0 {
		interval = 2 * time.Second
	}
	var clients []*client.Client
	for _, u := range creds.URLs {
		c, err := fleetClient(u, creds.current, creds.roots, "", nil)
		if err != nil {
			log.Error("fleet client", slog.String("url", u), slog.Any("error", err))
			return
		}
		clients = append(clients, c)
	}
	if len(clients) == 0 {
		log.Error("no control plane to heartbeat to: join again with --join URL")
		return
	}
	// One attempt never takes long, so the others are tried in time.
	attempt := min(max(interval, 2*time.Second), 10*time.Second)
	cur := 0
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var req client.HostHeartbeatRequest
		if capacity != nil {
			req.CapacityVCPUs, req.CapacityMemoryMB = capacityFields(capacity())
		}
		for i := range clients {
			k := (cur + i) % len(clients)
			actx, cancel := context.WithTimeout(ctx, attempt)
			err := clients[k].HostHeartbeatWith(actx, creds.HostID, req)
			cancel()
			if err == nil {
				if k != cur {
					log.Info("heartbeat: failed over to another control plane", slog.String("url", creds.URLs[k]))
				}
				cur = k
				break
			}
			if ctx.Err() != nil {
				return
			}
			log.Warn("heartbeat", slog.String("url", creds.URLs[k]), slog.Any("error", err))
		}
		if leaf := creds.current().Leaf; leaf != nil {
			life := leaf.NotAfter.Sub(leaf.NotBefore)
			if time.Until(leaf.NotAfter) < life/3 {
				if err := renew(ctx, clients[cur], creds); err != nil && ctx.Err() == nil {
					log.Warn("renew certificate", slog.String("url", creds.URLs[cur]), slog.Any("error", err))
					cur = (cur + 1) % len(clients) // the next pass tries another
				} else if err == nil {
					log.Info("certificate renewed", slog.Time("expires_at", creds.current().Leaf.NotAfter))
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// renew has a new key certified and saves it.
func renew(ctx context.Context, c *client.Client, creds *credentials) error {
	keyPEM, csrPEM, err := fleet.NewKeyCSR()
	if err != nil {
		return err
	}
	got, err := c.RenewHostCertificate(ctx, creds.HostID, string(csrPEM))
	if err != nil {
		return err
	}
	return creds.save(keyPEM, []byte(got.Certificate), []byte(got.CACertificate))
}

// hasJoined reports whether the agent of this data dir has joined a fleet.
func hasJoined(paths layout.Layout) bool {
	_, err := os.Stat(filepath.Join(fleetDir(paths), credHost))
	return err == nil
}
