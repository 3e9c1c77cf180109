package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wrennhq/wrenn/internal/agent"
	"github.com/wrennhq/wrenn/internal/agentrpc"
	"github.com/wrennhq/wrenn/internal/cgroup"
	"github.com/wrennhq/wrenn/internal/image"
	"github.com/wrennhq/wrenn/internal/layout"
	"github.com/wrennhq/wrenn/internal/netslot"
	"github.com/wrennhq/wrenn/internal/vmm/qemu"
)

// Environment variables of the host agent.
const (
	envAgentToken = "WRENN_AGENT_TOKEN"
	envAgentAddr  = "WRENN_AGENT_ADDR" // for `wrenn server`: use this agent instead of one in process
	envSourceDir  = "WRENN_SOURCE_DIR" // the checkout envd is built from
	envAccel      = "WRENN_ACCEL"      // force "kvm" or "tcg"
	envTCGCPU     = "WRENN_TCG_CPU"    // the CPU model guests see under TCG
	envImagesDir  = "WRENN_IMAGES_DIR" // build and keep images here instead of <data-dir>/images
	envWarmPool   = "WRENN_WARM_POOL"  // sandboxes kept ready per base template; 0 for none
	// The control group, in each cgroup hierarchy, that sandboxes' groups
	// go in; "off" runs sandboxes without resource limits.
	envCgroupParent = "WRENN_CGROUP_PARENT"
	// The first of the user IDs VMMs run as (each VM one of its own above it).
	envVMUIDBase = "WRENN_VM_UID_BASE"
	// Shared store (issue 13): a directory every agent of a fleet mounts at
	// the same path, where paused sandboxes and snapshot templates are kept
	// so that any host of it can resume or start them (internal/agent,
	// shared.go). Unset: they stay on their host.
	envSharedDir = "WRENN_SHARED_DIR"
)

// hostLayout is the data dir layout, with images where WRENN_IMAGES_DIR says.
func hostLayout(dataDir string) layout.Layout {
	l := layout.New(dataDir)
	l.ImagesRoot = os.Getenv(envImagesDir)
	l.Shared = layout.Shared(os.Getenv(envSharedDir))
	return l
}

// hostConfig is what the environment tells a host agent, read once at
// start by hostConfigFromEnv.
type hostConfig struct {
	// HostID is what the agent reports as its host's ID: a joined agent's
	// registry ID (issue 13); "" for the machine's hostname.
	HostID    string
	Accel     string // qemu.AccelKVM, qemu.AccelTCG, or "" to probe
	TCGCPU    string // the CPU model guests see under TCG; "" for the default
	PoolSize  int    // sandboxes kept ready per base template
	SourceDir string // the checkout envd is built from
	// EgressOpen are the non-public ranges sandboxes may be allowed to
	// reach; DNSUpstream the servers their resolvers ask.
	EgressOpen  []netip.Prefix
	DNSUpstream []string
	// Admission is how much of the host sandboxes may take (limits.go).
	Admission agent.AdmissionConfig
	// CgroupParent is where sandboxes' control groups go; "off" for none.
	CgroupParent string
	VMUIDBase    int // 0 for qemu.DefaultUIDBase
	// Pool is the warm pool's budget (issue 14, pool.go).
	Pool agent.PoolConfig
	// Health is the agent's health checks' interval (health.go, issue 14).
	Health agent.HealthConfig
}

// hostConfigFromEnv reads and checks the host agent's settings.
func hostConfigFromEnv() (hostConfig, error) {
	c := hostConfig{Accel: os.Getenv(envAccel), TCGCPU: os.Getenv(envTCGCPU), PoolSize: agent.DefaultPoolSize}
	switch c.Accel {
	case "", qemu.AccelKVM, qemu.AccelTCG:
	default:
		return c, fmt.Errorf("%s=%q: want %q or %q, or unset to probe which works", envAccel, c.Accel, qemu.AccelKVM, qemu.AccelTCG)
	}
	if v := os.Getenv(envWarmPool); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 64 {
			return c, fmt.Errorf("%s must be a number from 0 to 64", envWarmPool)
		}
		c.PoolSize = n
	}
	if d := os.Getenv(envSharedDir); d != "" && !filepath.IsAbs(d) {
		return c, fmt.Errorf("%s must be an absolute path: disks in it name each other by it", envSharedDir)
	}
	var err error
	if c.Admission, err = admissionFromEnv(); err != nil {
		return c, err
	}
	if c.Pool, err = poolFromEnv(); err != nil { // warm pool budget (issue 14)
		return c, err
	}
	// Health checks' interval (health.go, issue 14).
	if c.Health, err = healthFromEnv(); err != nil {
		return c, err
	}
	c.CgroupParent = envOr(envCgroupParent, qemu.DefaultCgroupParent)
	if v := os.Getenv(envVMUIDBase); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 || n > 1<<31-1-qemu.DefaultUIDCount {
			return c, fmt.Errorf("%s must be a number from 1000 to %d", envVMUIDBase, 1<<31-1-qemu.DefaultUIDCount)
		}
		c.VMUIDBase = n
	}
	src, err := sourceDir()
	if err != nil {
		return c, err
	}
	c.SourceDir = src
	if c.EgressOpen, err = openedFromEnv(); err != nil {
		return c, err
	}
	if c.DNSUpstream, err = upstreamFromEnv(); err != nil {
		return c, err
	}
	return c, nil
}

// host is a running host agent: the sandbox manager and what it needs.
type host struct {
	manager *agent.Manager
	net     *netslot.Manager
}

// startHost builds the guest images if missing, then starts the sandbox
// manager and adopts the VMs a previous agent left running.
func startHost(ctx context.Context, paths layout.Layout, hc hostConfig, log *slog.Logger, progress io.Writer) (*host, error) {
	builder := image.NewBuilder(image.Config{Layout: paths, RepoDir: hc.SourceDir, Logger: log, Progress: progress})
	kernel, err := builder.EnsureKernel(ctx)
	if err != nil {
		return nil, fmt.Errorf("guest kernel: %w", err)
	}
	minimal, err := builder.EnsureBase(ctx, "minimal")
	if err != nil {
		return nil, fmt.Errorf("base template: %w", err)
	}
	rootfs, err := minimal.Pin(paths)
	if err != nil {
		return nil, err
	}
	var cg *cgroup.Host
	if hc.CgroupParent != "off" {
		if cg, err = cgroup.Detect(cgroup.DefaultRoot, hc.CgroupParent); err != nil {
			return nil, fmt.Errorf("cgroups (set %s=off to run sandboxes without resource limits): %w", envCgroupParent, err)
		}
		log.Info("sandboxes get a control group each", slog.Bool("cgroup_v2", cg.V2()), slog.String("parent", hc.CgroupParent))
	} else {
		log.Warn("sandboxes run without resource limits", slog.String(envCgroupParent, "off"))
	}
	driver, err := qemu.New(qemu.Config{Accel: hc.Accel, TCGCPU: hc.TCGCPU, Logger: log, Cgroups: cg, UIDBase: hc.VMUIDBase})
	if err != nil {
		return nil, err
	}
	driver.Accel(ctx, kernel)
	nm, err := netslot.NewManager(ctx, netSlotsFromEnv(netslot.Config{Logger: log, Opened: hc.EgressOpen, Upstream: hc.DNSUpstream}))
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	hostname, _ := os.Hostname()
	if hc.HostID != "" {
		hostname = hc.HostID
	}
	m := agent.New(agent.Config{
		HostID: hostname, Layout: paths, Driver: driver, Network: nm, Logger: log, PoolSize: hc.PoolSize, Pool: hc.Pool, Admission: hc.Admission, Health: hc.Health,
		Bases: []agent.Base{{Name: minimal.Name, RootFS: rootfs, Kernel: kernel, SizeBytes: minimal.SizeBytes}},
	})
	if err := m.Adopt(ctx); err != nil {
		nm.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	m.Warm(ctx)
	m.FillPool()
	m.CollectImages()
	return &host{manager: m, net: nm}, nil
}

// close ends the warm pool and releases the host's idle resources;
// sandboxes stay up for the next agent to adopt.
func (h *host) close(ctx context.Context) error {
	h.manager.Close()
	return h.net.Close(ctx)
}

// sourceDir finds the Wrenn checkout that envd is built from: $WRENN_SOURCE_DIR,
// else the working directory or one above it holding Wrenn's go.mod.
func sourceDir() (string, error) {
	if d := os.Getenv(envSourceDir); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/wrennhq/wrenn\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("cannot find the Wrenn source to build envd from: run from the checkout or set %s", envSourceDir)
		}
		dir = parent
	}
}

// agentToken returns the configured agent token, or the one kept at path,
// generating it once. A blank token is refused, never used: it would admit
// anyone presenting an empty one.
func agentToken(configured, path string) (string, error) {
	if configured != "" {
		if strings.TrimSpace(configured) == "" {
			return "", fmt.Errorf("%s is blank", envAgentToken)
		}
		return configured, nil
	}
	b, err := os.ReadFile(path)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("agent token file %s is empty: delete it to have a new token generated, or write one into it", path)
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read agent token: %w", err)
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	tok := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write agent token: %w", err)
	}
	return tok, nil
}

// serveAgent serves the host's RPC on addr ("unix:/path" or "host:port")
// until ctx ends.
func serveAgent(ctx context.Context, h *host, addr, token string, log *slog.Logger, ready func(net.Addr)) error {
	network, address := "tcp", addr
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, address = "unix", p
		_ = os.Remove(p) // a socket left by a previous process
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		return fmt.Errorf("agent listen: %w", err)
	}
	if network == "unix" {
		if err := os.Chmod(address, 0o600); err != nil {
			ln.Close()
			return err
		}
	}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           agentrpc.NewHandler(h.manager, token),
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("agent serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}
