package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/wrennhq/wrenn/internal/layout"
)

func agentCommand() *cobra.Command {
	var listen, dataDir string
	var jc joinConfig // the agent link (issue 13, fleetlink.go)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a host agent: the VMs of this machine, for a control plane elsewhere",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("data-dir") {
				dataDir = envOr(envDataDir, defaultDataDir())
			}
			level, err := parseLevel(os.Getenv(envLogLevel))
			if err != nil {
				return err
			}
			hc, err := hostConfigFromEnv()
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			// A joined agent (--join, or credentials of an earlier join)
			// serves on mutual TLS, with no WRENN_AGENT_TOKEN.
			if len(jc.URLs) > 0 || hasJoined(hostLayout(dataDir)) {
				return runJoinedAgent(cmd.Context(), listen, jc, hostLayout(dataDir), hc, log)
			}
			return runAgent(cmd.Context(), listen, hostLayout(dataDir), hc, log)
		},
	}
	cmd.PreRunE = func(*cobra.Command, []string) error { return loadDotEnv() }
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:7070", `address to serve the agent RPC on ("host:port" or "unix:/path")`)
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "where the agent keeps images and sandboxes (env "+envDataDir+")")
	cmd.Flags().StringSliceVar(&jc.URLs, "join", nil, "join a fleet: the control plane's fleet listener, https://host:port (wrenn server --fleet-listen); "+
		"several replicas' as URL1,URL2 or repeated, failed over between (kept with the agent's credentials)")
	cmd.Flags().StringVar(&jc.Token, "token", "", "with --join: the host's one-time registration token (POST /v1/hosts)")
	cmd.Flags().StringVar(&jc.CASHA256, "ca-sha256", "", "with --join: the SHA-256 of the fleet CA the control plane must have (its log says ca_sha256)")
	cmd.Flags().StringVar(&jc.Advertise, "advertise", "", "with --join: the host:port the control plane dials this agent at (default: --listen)")
	return cmd
}

func runAgent(ctx context.Context, listen string, paths layout.Layout, hc hostConfig, log *slog.Logger) error {
	if err := os.MkdirAll(paths.Root, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	token, err := agentToken(os.Getenv(envAgentToken), paths.AgentToken())
	if err != nil {
		return err
	}
	h, err := startHost(ctx, paths, hc, log, os.Stderr)
	if err != nil {
		return err
	}
	defer h.close(context.WithoutCancel(ctx))
	return serveAgent(ctx, h, listen, token, log, func(a net.Addr) {
		log.Info("wrenn agent listening", slog.String("addr", a.String()), slog.String("token_file", paths.AgentToken()))
	})
}
