package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/wrennhq/wrenn/client"
)

// execCommand is `wrenn exec ID -- CMD ARGS...`: the command's output as
// it comes, on the matching descriptors, and its exit code as ours.
func execCommand() *cobra.Command {
	var (
		envs    []string
		cwd     string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:               "exec ID -- CMD [ARGS...]",
		Short:             "Run a command in a sandbox, streaming its output; exits with its exit code",
		Args:              cobra.MinimumNArgs(2),
		ValidArgsFunction: completeSandboxIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dash := cmd.ArgsLenAtDash(); dash != -1 && dash != 1 {
				return errors.New("usage: wrenn exec ID -- CMD [ARGS...]")
			}
			e, err := parsePairs("env", envs)
			if err != nil {
				return err
			}
			c, _, err := newAPIClient(needAPIKey)
			if err != nil {
				return err
			}
			req := client.Command(args[1], args[2:]...)
			req.Envs, req.Cwd, req.Timeout = e, cwd, timeout
			st, err := c.ExecStream(cmd.Context(), args[0], req)
			if err != nil {
				return explain(err, "running a command in sandbox "+args[0])
			}
			defer st.Close()
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			for ev, err := range st.Events() {
				if err != nil {
					if cmd.Context().Err() != nil {
						return exitCodeError{130} // interrupted: the command was stopped
					}
					return explain(err, "running a command in sandbox "+args[0])
				}
				switch ev.Type {
				case client.EventStdout:
					if _, err := stdout.Write(ev.Data); err != nil {
						return err
					}
				case client.EventStderr:
					if _, err := stderr.Write(ev.Data); err != nil {
						return err
					}
				case client.EventExit:
					if ev.ExitCode != 0 {
						return exitCodeError{ev.ExitCode}
					}
					return nil
				}
			}
			return errors.New("the command's stream ended without its exit")
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return fmt.Errorf("%w (put the command after --: wrenn exec ID -- CMD ARGS...)", err)
	})
	cmd.Flags().StringArrayVarP(&envs, "env", "e", nil, "KEY=VALUE added to the environment (repeatable)")
	cmd.Flags().StringVarP(&cwd, "cwd", "w", "", "working directory (relative to /root)")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "longest the command may run, like 10m (default: the server's, 30s)")
	return cmd
}

// shellCommand is `wrenn shell ID`: an interactive terminal in the
// sandbox, with our terminal in raw mode and its size followed.
func shellCommand() *cobra.Command {
	var opts client.TerminalOptions
	cmd := &cobra.Command{
		Use:               "shell ID [-- CMD [ARGS...]]",
		Short:             "Open an interactive terminal in a sandbox",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeSandboxIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := newAPIClient(needAPIKey)
			if err != nil {
				return err
			}
			if len(args) > 1 {
				opts.Cmd, opts.Args = args[1], args[2:]
			}
			inFd, outFd := int(os.Stdin.Fd()), int(os.Stdout.Fd())
			tty := term.IsTerminal(inFd)
			if w, h, err := term.GetSize(outFd); err == nil {
				opts.Cols, opts.Rows = w, h
			}
			if opts.Envs == nil && os.Getenv("TERM") != "" {
				opts.Envs = map[string]string{"TERM": os.Getenv("TERM")}
			}
			t, err := c.Terminal(cmd.Context(), args[0], opts)
			if err != nil {
				return explain(err, "opening a terminal in sandbox "+args[0])
			}
			defer t.Close()
			if tty {
				old, err := term.MakeRaw(inFd)
				if err != nil {
					t.Kill()
					return fmt.Errorf("setting the terminal to raw mode: %w", err)
				}
				defer term.Restore(inFd, old)
			}
			winch := make(chan os.Signal, 1)
			signal.Notify(winch, syscall.SIGWINCH)
			defer signal.Stop(winch)
			done := make(chan struct{})
			defer close(done)
			go func() {
				for {
					select {
					case <-done:
						return
					case <-winch:
						if w, h, err := term.GetSize(outFd); err == nil {
							_ = t.Resize(w, h)
						}
					}
				}
			}()
			// Typing: stdin goes to the terminal. A Read of stdin cannot be
			// interrupted, so this goroutine may outlive the session by one
			// keystroke; the process exits right after.
			go func() { _, _ = io.Copy(t, os.Stdin) }()
			out := cmd.OutOrStdout()
			for ev, err := range t.Events() {
				if err != nil {
					return explain(err, "terminal of sandbox "+args[0])
				}
				switch ev.Type {
				case client.TerminalOutput:
					if _, err := out.Write(ev.Data); err != nil {
						return err
					}
				case client.TerminalError:
					fmt.Fprintf(cmd.ErrOrStderr(), "\r\nwrenn: %s\r\n", strings.TrimSpace(ev.Message))
				case client.TerminalExit:
					if ev.ExitCode != 0 {
						return exitCodeError{ev.ExitCode}
					}
					return nil
				}
			}
			return errors.New("the terminal ended without its exit")
		},
	}
	cmd.Flags().StringVarP(&opts.Cwd, "cwd", "w", "", "working directory")
	cmd.Flags().StringVarP(&opts.User, "user", "u", "", "user to run as (default root)")
	return cmd
}
