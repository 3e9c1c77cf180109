package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/auth"
	"github.com/wrennhq/wrenn/internal/store"
)

// envSignup is "open" (anyone may sign up, the default) or "closed" (the
// operator creates accounts with `wrenn admin user create`).
const envSignup = "WRENN_SIGNUP"

// signupClosedFromEnv reads WRENN_SIGNUP.
func signupClosedFromEnv() (bool, error) {
	switch v := os.Getenv(envSignup); v {
	case "", "open":
		return false, nil
	case "closed":
		return true, nil
	default:
		return false, fmt.Errorf("%s=%q: want open or closed", envSignup, v)
	}
}

// adminCommand is `wrenn admin`: the operator's work on the store the
// server uses, done directly, with no server running or while one runs.
func adminCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Operator tasks on Wrenn's store: users, platform admins and team quotas",
		Long: "Operator tasks on the store `wrenn server` uses: the SQLite file in the data directory, or\n" +
			"the PostgreSQL database of " + envDatabase + " when it is set (the environment and ./.env are read as the server reads them).",
	}
	cmd.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := loadDotEnv(); err != nil {
			return err
		}
		if !cmd.Flags().Changed("data-dir") {
			dataDir = envOr(envDataDir, defaultDataDir())
		}
		return nil
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", defaultDataDir(), "where Wrenn keeps its state (env "+envDataDir+")")
	open := func(ctx context.Context) (*store.DB, error) {
		db, err := store.Open(ctx, store.Config{DatabaseURL: os.Getenv(envDatabase), SQLitePath: hostLayout(dataDir).DB()})
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return db, nil
	}
	cmd.AddCommand(adminUserCommand(open), adminQuotaCommand(open))
	return cmd
}

type openStore func(ctx context.Context) (*store.DB, error)

func adminUserCommand(open openStore) *cobra.Command {
	user := &cobra.Command{Use: "user", Short: "Manage user accounts and platform admins",
		Long: "Manage user accounts. Platform admins manage the fleet's hosts (/v1/hosts); the first account\n" +
			"made on a server is one."}
	var email string
	var passwordStdin, admin bool
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a user and their team, as signup does (signup may be closed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !passwordStdin {
				return errors.New("give the password on standard input, with --password-stdin")
			}
			password, err := readPassword(cmd.InOrStdin())
			if err != nil {
				return err
			}
			db, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			svc := auth.NewService(auth.Config{Accounts: db, Keys: db,
				Hasher: auth.NewHasher(auth.DefaultPasswordParams, runtime.NumCPU()),
				Now:    time.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			u, t, err := svc.CreateAccount(cmd.Context(), email, password)
			if err != nil {
				return clientError(err)
			}
			if admin && !u.IsAdmin {
				if u, err = db.SetAdmin(cmd.Context(), u.Email, true); err != nil {
					return fmt.Errorf("user %s was created, but not made an admin: %w", email, clientError(err))
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user_id=%s team_id=%s email=%s admin=%t\n", u.ID, t.ID, u.Email, u.IsAdmin)
			return nil
		},
	}
	create.Flags().StringVar(&email, "email", "", "the user's email address")
	create.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (its first line)")
	create.Flags().BoolVar(&admin, "admin", false, "make the user a platform admin")
	_ = create.MarkFlagRequired("email")
	user.AddCommand(create, adminSetCommand(open, true), adminSetCommand(open, false))
	return user
}

// adminSetCommand is `wrenn admin user promote EMAIL` (admin) or `demote
// EMAIL`: the user is a platform admin, or no longer one, from their next
// request on (whatever their login's JWT).
func adminSetCommand(open openStore, admin bool) *cobra.Command {
	use, short := "promote EMAIL", "Make a user a platform admin"
	if !admin {
		use, short = "demote EMAIL", "Make a user no longer a platform admin"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			u, err := db.SetAdmin(cmd.Context(), args[0], admin)
			if err != nil {
				return clientError(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user_id=%s email=%s admin=%t\n", u.ID, u.Email, u.IsAdmin)
			return nil
		},
	}
}

// readPassword reads the first line of r.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// clientError shows a domain error by its message, as a client would see it.
func clientError(err error) error {
	if code := wrenn.ErrorCode(err); code != wrenn.EInternal {
		return errors.New(wrenn.ErrorMessage(err))
	}
	return err
}

func adminQuotaCommand(open openStore) *cobra.Command {
	quota := &cobra.Command{Use: "quota", Short: "Show and set a team's quota", Long: "A team's quota is the operator's default " +
		"(WRENN_QUOTA_* of the server's environment) unless set here. A limit of 0 is no limit."}
	var team, email string
	teamFlags := func(c *cobra.Command) {
		c.Flags().StringVar(&team, "team", "", "the team's ID")
		c.Flags().StringVar(&email, "email", "", "or a user's email: their default team")
		c.MarkFlagsOneRequired("team", "email")
		c.MarkFlagsMutuallyExclusive("team", "email")
	}
	resolve := func(ctx context.Context, db *store.DB) (string, error) {
		if team != "" {
			return team, nil
		}
		u, err := db.UserByEmail(ctx, email)
		if err != nil {
			return "", clientError(err)
		}
		t, err := db.DefaultTeam(ctx, u.ID)
		if err != nil {
			return "", err
		}
		return t.ID, nil
	}

	// report prints the team's limits, where each comes from, and what the
	// team holds.
	report := func(cmd *cobra.Command, db *store.DB, id string, def wrenn.Quota, o wrenn.QuotaOverride) error {
		u, err := db.TeamUsage(cmd.Context(), id)
		if err != nil {
			return err
		}
		writeQuota(cmd.OutOrStdout(), id, def, o, u)
		return nil
	}

	show := &cobra.Command{
		Use:   "show",
		Short: "Show a team's quota, where each limit comes from, and what the team holds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			def, err := limitsFromEnv()
			if err != nil {
				return err
			}
			db, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			id, err := resolve(cmd.Context(), db)
			if err != nil {
				return err
			}
			o, err := db.TeamQuota(cmd.Context(), id)
			if err != nil {
				return clientError(err)
			}
			return report(cmd, db, id, def.Quota, o)
		},
	}
	teamFlags(show)

	var sandboxes, vcpus, memory, snapshot string
	var reset bool
	set := &cobra.Command{
		Use:   "set",
		Short: "Set some of a team's limits (a number, 0 for none, or \"default\" for the operator's)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			id, err := resolve(cmd.Context(), db)
			if err != nil {
				return err
			}
			var o wrenn.QuotaOverride
			if !reset {
				if o, err = db.TeamQuota(cmd.Context(), id); err != nil {
					return clientError(err)
				}
			}
			flags := cmd.Flags()
			for _, f := range []struct {
				name string
				dst  **int
			}{{"sandboxes", &o.Sandboxes}, {"vcpus", &o.VCPUs}, {"memory-mb", &o.MemoryMB}} {
				if flags.Changed(f.name) {
					v, _ := flags.GetString(f.name)
					if *f.dst, err = parseLimit[int](f.name, v); err != nil {
						return err
					}
				}
			}
			if flags.Changed("snapshot-mb") {
				if o.SnapshotMB, err = parseLimit[int64]("snapshot-mb", snapshot); err != nil {
					return err
				}
			}
			if err := db.SetTeamQuota(cmd.Context(), id, o, time.Now()); err != nil {
				return clientError(err)
			}
			def, err := limitsFromEnv()
			if err != nil {
				return err
			}
			return report(cmd, db, id, def.Quota, o)
		},
	}
	teamFlags(set)
	set.Flags().StringVar(&sandboxes, "sandboxes", "", "running sandboxes")
	set.Flags().StringVar(&vcpus, "vcpus", "", "vCPUs of the running sandboxes together")
	set.Flags().StringVar(&memory, "memory-mb", "", "memory of the running sandboxes together, MiB")
	set.Flags().StringVar(&snapshot, "snapshot-mb", "", "snapshot templates and paused sandboxes, MiB")
	set.Flags().BoolVar(&reset, "reset", false, "first return every limit to the operator's default")
	quota.AddCommand(show, set)
	return quota
}

// parseLimit reads a limit flag: a whole number from 0 (no limit), or
// "default" (nil: the operator's default).
func parseLimit[T int | int64](flag, v string) (*T, error) {
	if v == "default" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || int64(T(n)) != n || n > 1<<40 {
		return nil, fmt.Errorf("--%s=%q: want a whole number (0 for no limit) or \"default\"", flag, v)
	}
	t := T(n)
	return &t, nil
}

// writeQuota prints the team's effective quota, where each limit comes
// from, and what the team holds.
func writeQuota(w io.Writer, teamID string, def wrenn.Quota, o wrenn.QuotaOverride, u wrenn.Usage) {
	q := o.Apply(def)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "team %s\nLIMIT\tQUOTA\tFROM\tIN USE\n", teamID)
	row := func(name string, limit int64, own bool, used string) {
		from, shown := "default", strconv.FormatInt(limit, 10)
		if own {
			from = "team"
		}
		if limit == 0 {
			shown = "none"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, shown, from, used)
	}
	row("sandboxes", int64(q.Sandboxes), o.Sandboxes != nil, strconv.Itoa(u.Sandboxes))
	row("vcpus", int64(q.VCPUs), o.VCPUs != nil, strconv.Itoa(u.VCPUs))
	row("memory-mb", int64(q.MemoryMB), o.MemoryMB != nil, strconv.Itoa(u.MemoryMB))
	row("snapshot-mb", q.SnapshotMB, o.SnapshotMB != nil, strconv.FormatInt((u.SnapshotBytes+wrenn.MiB-1)/wrenn.MiB, 10))
	tw.Flush()
}
