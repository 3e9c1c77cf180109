package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agentrpc"
	"github.com/wrennhq/wrenn/internal/auth"
	"github.com/wrennhq/wrenn/internal/control"
	"github.com/wrennhq/wrenn/internal/fleet"
	"github.com/wrennhq/wrenn/internal/httpapi"
	"github.com/wrennhq/wrenn/internal/layout"
	"github.com/wrennhq/wrenn/internal/lease"
	"github.com/wrennhq/wrenn/internal/store"
	"github.com/wrennhq/wrenn/web"
)

func serverCommand() *cobra.Command {
	var cfg serverConfig
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane (and, on one machine, everything else)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("listen") {
				cfg.Listen = envOr(envListen, defaultListen)
			}
			if !cmd.Flags().Changed("data-dir") {
				cfg.DataDir = envOr(envDataDir, defaultDataDir())
			}
			if !cmd.Flags().Changed("agent") {
				cfg.Agent = envOr(envAgentAddr, agentLocal)
			}
			cfg.AgentToken = os.Getenv(envAgentToken)
			if cfg.Agent == agentLocal {
				var err error
				if cfg.Host, err = hostConfigFromEnv(); err != nil {
					return err
				}
			}
			if v := os.Getenv(envMaxUpload); v != "" {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n <= 0 {
					return fmt.Errorf("%s must be a positive number of bytes", envMaxUpload)
				}
				cfg.MaxUploadBytes = n
			}
			var err error
			if cfg.ReconcileInterval, err = envDuration(envReconcileInterval); err != nil {
				return err
			}
			if cfg.SettleGrace, err = envDuration(envSettleGrace); err != nil {
				return err
			}
			if cfg.StoppedRetention, err = envDuration(envStoppedRetention); err != nil {
				return err
			}
			if cfg.StatsStep, err = envDuration(envStatsStep); err != nil {
				return err
			}
			cfg.ConnsPerClient = httpapi.DefaultConnsPerClient
			if v := os.Getenv(envConnsPerClient); v != "" {
				if cfg.ConnsPerClient, err = strconv.Atoi(v); err != nil || cfg.ConnsPerClient < 1 {
					return fmt.Errorf("%s must be a positive number of connections", envConnsPerClient)
				}
			}
			if cfg.Network, err = networkConfigFromEnv(); err != nil {
				return err
			}
			if cfg.Limits, err = limitsFromEnv(); err != nil {
				return err
			}
			if cfg.SignupClosed, err = signupClosedFromEnv(); err != nil {
				return err
			}
			cfg.DatabaseURL = os.Getenv(envDatabase)
			cfg.JWTSecret = os.Getenv(envJWTSecret)
			// The agent link (issue 13, fleetlink.go).
			if err := cfg.Fleet.fromEnv(cmd.Flags().Changed("fleet-listen")); err != nil {
				return err
			}
			if cfg.LogLevel, err = parseLevel(os.Getenv(envLogLevel)); err != nil {
				return err
			}
			return runServer(cmd.Context(), cfg)
		},
	}
	cmd.PreRunE = func(*cobra.Command, []string) error { return loadDotEnv() }
	cmd.Flags().StringVar(&cfg.Listen, "listen", defaultListen, "address to serve the API on (env "+envListen+")")
	cmd.Flags().StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "where Wrenn keeps its state (env "+envDataDir+")")
	cmd.Flags().StringVar(&cfg.Agent, "agent", agentLocal, `host agent: "local" (in this process), "none", or a wrenn agent's address (env `+envAgentAddr+")")
	cmd.Flags().StringVar(&cfg.Fleet.Listen, "fleet-listen", "", "address to serve joining agents on, TLS (env "+envFleetListen+"); none by default")
	return cmd
}

func runServer(ctx context.Context, cfg serverConfig) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	paths := hostLayout(cfg.DataDir)
	secret, err := jwtSecret(cfg.JWTSecret, paths.JWTSecret())
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, store.Config{DatabaseURL: cfg.DatabaseURL, SQLitePath: paths.DB()})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer db.Close()
	// Replicas on one database (issue 13, control planes that can fail):
	// each background job runs on the one replica holding its lease
	// (internal/lease), and every replica must sign and accept the same
	// JWTs.
	leases := lease.New(lease.Config{Store: db, TTL: cfg.Fleet.LeaseTTL, Logger: log})
	if db.Engine() == store.EnginePostgres {
		log.Info("background jobs run under leases", slog.String("holder", leases.Holder()), slog.Duration("lease_ttl", leases.TTL()))
		if cfg.JWTSecret == "" {
			log.Warn("replicas of the control plane on one database need the same " + envJWTSecret + "; this one's is in " + paths.JWTSecret())
		}
	}

	now := time.Now
	authSvc := auth.NewService(auth.Config{
		Accounts: db, Keys: db,
		Hasher: auth.NewHasher(auth.DefaultPasswordParams, runtime.NumCPU()),
		Tokens: auth.NewTokens(secret, now),
		Now:    now, Logger: log,
		SignupClosed: cfg.SignupClosed,
	})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	agentClient, agentDone, err := connectAgent(ctx, cfg, paths, log)
	if err != nil {
		return err
	}
	// On the way out, after the API has shut down: stop an in-process
	// agent and let it finish removing its ready network slots before the
	// process exits.
	defer func() {
		cancel()
		agentDone()
	}()
	var ctlAgent wrenn.Agent
	var hostID, hostStore string
	if agentClient != nil {
		ctlAgent = agentClient
		info, err := agentClient.Info(ctx)
		if err != nil {
			return fmt.Errorf("ask the host agent about its host: %w", err)
		}
		hostID, hostStore = info.ID, info.StoreID
		if err := registerBases(ctx, info, db, now); err != nil {
			return err
		}
	} else if cfg.Fleet.Listen == "" {
		log.Warn("running without a host agent or a fleet listener: sandbox operations answer 502")
	}
	// The registry of hosts (issue 13); agents join it on the fleet
	// listener: they join, heartbeat and renew their certificates there
	// (fleetlink.go), and sandboxes are placed on them (placement.go).
	var routing *fleetRouting // set below, with a fleet listener
	hosts := fleet.New(fleet.Config{Hosts: db, Roles: db, Now: now, Logger: log,
		EndSandboxes: func(ctx context.Context, hostID string, ids []string) {
			if routing != nil {
				routing.endSandboxes(ctx, hostID, ids)
			}
		}})
	link, stopFleet, err := startFleet(ctx, cfg.Fleet, db, hosts, leases, now, log)
	if err != nil {
		return err
	}
	defer stopFleet()
	var ctlFleet control.Fleet
	if link != nil {
		routing = newFleetRouting(link, db, hostID, localAdmission(cfg), now, log)
		routing.setLocalStore(hostStore) // travel.go
		ctlFleet = routing
	}
	controlSvc := control.NewService(control.Config{Sandboxes: db, Templates: db, Quotas: db, Agent: ctlAgent, HostID: hostID, Now: now, Logger: log,
		Limits: cfg.Limits, Network: cfg.Network, Stats: db, Fleet: ctlFleet})
	go leases.Run(ctx, "stats", control.NewStatsRecorder(control.StatsRecorderConfig{Store: db, Now: now, Step: cfg.StatsStep, Logger: log}).Run)
	// A host's reconciler runs on the replica holding its lease, a fresh
	// one each time the lease is taken.
	reconcile := func(ctx context.Context, id string, h control.HostLister) {
		leases.Run(ctx, reconcileLease(id), func(ctx context.Context) {
			control.NewReconciler(control.ReconcilerConfig{Store: db, Host: h, Now: now, Logger: log,
				Interval: cfg.ReconcileInterval, SettleGrace: cfg.SettleGrace,
				AutoPause: controlSvc.AutoPause, StoppedRetention: cfg.StoppedRetention, HostID: id}).Run(ctx)
		})
	}
	if agentClient != nil && routing == nil {
		go reconcile(ctx, "", agentClient)
	}
	// A fleet (issue 13, placement.go): a reconciler for each host.
	if routing != nil {
		if agentClient != nil {
			go reconcile(ctx, hostID, agentClient)
		}
		go routing.run(ctx, reconcile)
	}
	// The web console (issue 12), embedded in this binary.
	console := web.New()
	if !console.Built() {
		log.Warn("this binary was built without the web console; / says how to build it (build_console in scripts/lib.sh)")
	}
	api := httpapi.New(httpapi.Config{Auth: authSvc, Control: controlSvc, Logger: log, MaxUploadBytes: cfg.MaxUploadBytes,
		Hosts: hosts, Console: console})

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ln = httpapi.LimitConns(ln, cfg.ConnsPerClient)
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("wrenn server listening", slog.String("addr", ln.Addr().String()),
		slog.String("store", db.Engine()), slog.String("data_dir", cfg.DataDir))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

const (
	agentLocal = "local"
	agentNone  = "none"
)

// connectAgent returns the client of the host agent cfg names, starting
// one in this process for "local" (nil for "none"), and a function that
// waits, once ctx has ended, for an in-process agent to finish shutting
// down.
func connectAgent(ctx context.Context, cfg serverConfig, paths layout.Layout, log *slog.Logger) (*agentrpc.Client, func(), error) {
	nothing := func() {}
	switch cfg.Agent {
	case agentNone:
		return nil, nothing, nil
	case agentLocal:
		token, err := agentToken(cfg.AgentToken, paths.AgentToken())
		if err != nil {
			return nil, nothing, err
		}
		h, err := startHost(ctx, paths, cfg.Host, log, os.Stderr)
		if err != nil {
			return nil, nothing, err
		}
		ready, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			if err := serveAgent(ctx, h, "unix:"+paths.AgentSocket(), token, log, func(net.Addr) { close(ready) }); err != nil {
				log.Error("host agent stopped", slog.Any("error", err))
			}
			if err := h.close(context.WithoutCancel(ctx)); err != nil {
				log.Error("host agent shutdown", slog.Any("error", err))
			}
		}()
		select {
		case <-ready:
		case <-done:
			return nil, nothing, errors.New("the host agent failed to start serving")
		}
		return agentrpc.Dial("unix:"+paths.AgentSocket(), token), func() { <-done }, nil
	default:
		if cfg.AgentToken == "" {
			return nil, nothing, fmt.Errorf("%s is required to reach the agent at %s", envAgentToken, cfg.Agent)
		}
		return agentrpc.Dial(cfg.Agent, cfg.AgentToken), nothing, nil
	}
}

// registerBases records the base templates of the agent that info
// describes, so teams can list them and create sandboxes from them.
func registerBases(ctx context.Context, info *wrenn.HostInfo, db *store.DB, now func() time.Time) error {
	for _, t := range info.Templates {
		t.Type, t.CreatedAt = wrenn.TemplateBase, now().UTC()
		if err := db.PutTemplate(ctx, &t); err != nil {
			return fmt.Errorf("register base template %s: %w", t.Name, err)
		}
	}
	return nil
}
