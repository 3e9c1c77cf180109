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
	"time"

	"github.com/spf13/cobra"

	"github.com/wrennhq/wrenn/internal/auth"
	"github.com/wrennhq/wrenn/internal/control"
	"github.com/wrennhq/wrenn/internal/httpapi"
	"github.com/wrennhq/wrenn/internal/layout"
	"github.com/wrennhq/wrenn/internal/store"
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
			cfg.DatabaseURL = os.Getenv(envDatabase)
			cfg.JWTSecret = os.Getenv(envJWTSecret)
			var err error
			if cfg.LogLevel, err = parseLevel(os.Getenv(envLogLevel)); err != nil {
				return err
			}
			return runServer(cmd.Context(), cfg)
		},
	}
	cmd.PreRunE = func(*cobra.Command, []string) error { return loadDotEnv() }
	cmd.Flags().StringVar(&cfg.Listen, "listen", defaultListen, "address to serve the API on (env "+envListen+")")
	cmd.Flags().StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "where Wrenn keeps its state (env "+envDataDir+")")
	return cmd
}

func runServer(ctx context.Context, cfg serverConfig) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	paths := layout.New(cfg.DataDir)
	secret, err := jwtSecret(cfg.JWTSecret, paths.JWTSecret())
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, store.Config{DatabaseURL: cfg.DatabaseURL, DataDir: cfg.DataDir})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer db.Close()

	now := time.Now
	authSvc := auth.NewService(auth.Config{
		Accounts: db, Keys: db,
		Hasher: auth.NewHasher(auth.DefaultPasswordParams, runtime.NumCPU()),
		Tokens: auth.NewTokens(secret, now),
		Now:    now, Logger: log,
	})
	controlSvc := control.NewService(control.Config{Sandboxes: db, Templates: db, Now: now, Logger: log})
	api := httpapi.New(httpapi.Config{Auth: authSvc, Control: controlSvc, Logger: log})

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("wrenn server listening", slog.String("addr", ln.Addr().String()),
		slog.String("store", db.Engine()), slog.String("data_dir", cfg.DataDir))
	log.Warn("no host agent is configured yet: sandbox operations answer 502")

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
