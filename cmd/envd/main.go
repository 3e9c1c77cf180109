// Command envd is Wrenn's guest agent, baked into every image as
// /usr/local/bin/envd and built static (CGO_ENABLED=0). See docs/GUEST.md.
//
//	envd                          as PID 1: set the VM up, then run `envd serve` and reap orphans
//	envd serve                    serve the host on the virtio-serial port wrenn.envd
//	envd serve --listen unix:PATH serve sessions on a Unix socket (tests, benchmarks)
//	envd serve --emulated         tune the Go runtime for a guest under TCG
//	envd init [--cmdline FILE] [-- SERVE ARGS]
//	                              the PID-1 duties, spelled out (tests run it in namespaces)
//
// Logs go to stderr, the VM's console.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/wrennhq/wrenn/internal/envd"
)

const usage = `usage:
  envd                             (as PID 1) set the VM up, serve, reap
  envd serve [--port NAME] [--listen unix:PATH] [--emulated]
  envd init [--cmdline FILE] [-- serve args...]`

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))
	if err := run(os.Args[1:], log); err != nil {
		log.Error("envd", slog.Any(attrError, err))
		os.Exit(1)
	}
}

// logLevel is debug when ENVD_DEBUG is set; for PID 1, ENVD_DEBUG=1 on the
// kernel command line sets it (the kernel passes such words to init as
// environment).
func logLevel() slog.Level {
	if os.Getenv("ENVD_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

func run(args []string, log *slog.Logger) error {
	// The kernel may pass init words of its command line it did not
	// recognise: as PID 1, anything but an explicit init means init.
	if os.Getpid() == 1 && (len(args) == 0 || args[0] != "init") {
		return runInit(initConfig{cmdline: "/proc/cmdline", serveArgs: []string{"serve"}}, log)
	}
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "serve":
		return runServe(args[1:], log)
	case "init":
		cfg, err := parseInitArgs(args[1:])
		if err != nil {
			return err
		}
		return runInit(cfg, log)
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

func parseInitArgs(args []string) (initConfig, error) {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	cmdline := fs.String("cmdline", "/proc/cmdline", "file holding the kernel command line")
	if err := fs.Parse(args); err != nil {
		return initConfig{}, err
	}
	serve := fs.Args()
	if len(serve) == 0 {
		serve = []string{"serve"}
	}
	return initConfig{cmdline: *cmdline, serveArgs: serve}, nil
}

func runServe(args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	port := fs.String("port", envd.PortName, "name of the virtio-serial port to serve")
	listen := fs.String("listen", "", "serve sessions on unix:PATH instead of the port")
	emulated := fs.Bool("emulated", false, "the guest runs under emulation (TCG): tune the runtime for it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *emulated {
		if err := envd.TuneForEmulation(log); err != nil {
			log.Warn("tune for emulation", slog.Any(attrError, err))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var err error
	if *listen != "" {
		err = serveListen(ctx, *listen, log)
	} else {
		log.Info("envd serving", slog.String(attrPort, *port))
		// The bulk data channel (issue 14) beside the session.
		go envd.ServeBulkPort(ctx, envd.BulkPortName, log)
		err = envd.ServePort(ctx, *port, log)
	}
	if errors.Is(err, context.Canceled) {
		log.Info("envd stopped")
		return nil
	}
	return err
}

func serveListen(ctx context.Context, addr string, log *slog.Logger) error {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok || path == "" {
		return fmt.Errorf("--listen %q: want unix:PATH", addr)
	}
	os.Remove(path) // a socket left by an earlier run
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer os.Remove(path)
	log.Info("envd serving", slog.String(attrListen, addr))
	return envd.ServeListener(ctx, ln, log)
}
