// Command wrenn runs Wrenn: `wrenn server` is the control plane with its
// store (and, on one machine, everything else). main only parses
// configuration and wires the pieces together.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/wrennhq/wrenn/internal/jail"
)

func main() {
	jail.Main() // a re-executed jailer for a VMM becomes that VMM here
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := rootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		var ec exitCodeError
		if errors.As(err, &ec) {
			os.Exit(ec.code)
		}
		fmt.Fprintln(os.Stderr, "wrenn:", err)
		os.Exit(1)
	}
}

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "wrenn",
		Short:         "Wrenn runs untrusted code in microVM sandboxes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serverCommand())
	root.AddCommand(imageCommand())
	root.AddCommand(agentCommand())
	root.AddCommand(adminCommand())
	// The user's commands, through the Go SDK (cli*.go).
	root.AddCommand(signupCommand(), loginCommand(), logoutCommand(), keysCommand(), sandboxCommand(), execCommand(),
		cpCommand(), snapshotCommand(), shellCommand())
	return root
}
