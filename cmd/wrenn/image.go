package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wrennhq/wrenn/internal/image"
)

func imageCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Build the guest kernel and base templates",
	}
	cmd.AddCommand(imageBuildCommand(), imagePackagesCommand())
	return cmd
}

// imagePackagesCommand prints the Debian packages image building needs,
// for scripts: ensure_packages $(bin/wrenn image packages).
func imagePackagesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "packages",
		Short: "Print the Debian packages that building images needs, one a line",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), strings.Join(image.Packages(), "\n"))
			return err
		},
	}
}

func imageBuildCommand() *cobra.Command {
	var dataDir, repoDir string
	cmd := &cobra.Command{
		Use:   "build [base...]",
		Short: "Build the guest kernel and base templates (default: minimal) if missing or stale",
		Long: "Build the guest kernel and base templates into the data dir (or " + envImagesDir + "),\n" +
			"skipping whatever is up to date. Needs root and these Debian packages:\n" +
			strings.Join(image.Packages(), " "),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("data-dir") {
				dataDir = envOr(envDataDir, defaultDataDir())
			}
			level, err := parseLevel(os.Getenv(envLogLevel))
			if err != nil {
				return err
			}
			if len(args) == 0 {
				args = []string{"minimal"}
			}
			if repoDir == "" {
				if repoDir, err = sourceDir(); err != nil {
					return err
				}
			}
			b := image.NewBuilder(image.Config{
				Layout:   hostLayout(dataDir),
				RepoDir:  repoDir,
				Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
				Progress: os.Stderr,
			})
			out := cmd.OutOrStdout()
			for _, name := range args {
				base, err := b.EnsureBase(cmd.Context(), name)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "base %s (key %s)\n  rootfs: %s\n  kernel: %s\n",
					base.Name, base.Key, base.RootFS, base.Kernel)
			}
			return nil
		},
	}
	cmd.PreRunE = func(*cobra.Command, []string) error { return loadDotEnv() }
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "where Wrenn keeps its state (env "+envDataDir+")")
	cmd.Flags().StringVar(&repoDir, "repo", "", "Wrenn's source tree, to build the guest agent from ./cmd/envd (env "+envSourceDir+"; default: the checkout holding the working directory)")
	return cmd
}
