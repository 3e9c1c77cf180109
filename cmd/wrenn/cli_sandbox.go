package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wrennhq/wrenn/client"
)

// sandboxCommand is `wrenn sandbox`: create, list, inspect, pause, resume
// and remove sandboxes.
func sandboxCommand() *cobra.Command {
	var out output
	cmd := &cobra.Command{Use: "sandbox", Aliases: []string{"sandboxes", "sb"}, Short: "Manage sandboxes"}
	addJSONFlag(cmd, &out)
	header := []string{"ID", "STATUS", "TEMPLATE", "VCPUS", "MEMORY", "CREATED", "METADATA"}
	row := func(s client.Sandbox) []string {
		return []string{s.ID, string(s.Status), s.Template, strconv.Itoa(s.VCPUs), fmt.Sprintf("%d MiB", s.MemoryMB),
			s.CreatedAt.Local().Format(time.DateTime), formatPairs(s.Metadata)}
	}
	one := func(cmd *cobra.Command, s *client.Sandbox) error {
		return out.print(cmd, s, header, [][]string{row(*s)})
	}

	var (
		req            client.CreateSandboxRequest
		timeout        int
		envs, metadata []string
		idOnly         bool
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Start a sandbox",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if req.Envs, err = parsePairs("env", envs); err != nil {
				return err
			}
			if req.Metadata, err = parsePairs("metadata", metadata); err != nil {
				return err
			}
			if cmd.Flags().Changed("timeout") {
				req.TimeoutSec = client.Ptr(timeout)
			}
			c, _, err := newAPIClient(needAPIKey)
			if err != nil {
				return err
			}
			s, err := c.CreateSandbox(cmd.Context(), req)
			if err != nil {
				return explain(err, "creating a sandbox")
			}
			if idOnly && !out.json {
				fmt.Fprintln(cmd.OutOrStdout(), s.ID)
				return nil
			}
			return one(cmd, s)
		},
	}
	create.Flags().StringVar(&req.Template, "template", "", "template or snapshot to start from (server default: minimal)")
	create.Flags().IntVar(&req.VCPUs, "vcpus", 0, "virtual CPUs (default: the template's)")
	create.Flags().IntVar(&req.MemoryMB, "memory", 0, "memory in MiB (default: the template's)")
	create.Flags().IntVar(&timeout, "timeout", 0, "seconds of inactivity before the sandbox ends; 0 never (default: the server's)")
	create.Flags().StringArrayVar(&envs, "env", nil, "KEY=VALUE environment of every command (repeatable)")
	create.Flags().StringArrayVar(&metadata, "metadata", nil, "KEY=VALUE label (repeatable)")
	create.Flags().BoolVarP(&idOnly, "quiet", "q", false, "print only the new sandbox's ID")

	var all bool
	var filter []string
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List sandboxes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			md, err := parsePairs("metadata", filter)
			if err != nil {
				return err
			}
			c, _, err := newAPIClient(needAPIKey)
			if err != nil {
				return err
			}
			opts := client.ListOptions{Metadata: md}
			if all {
				opts.Status = []client.SandboxStatus{client.StatusPending, client.StatusRunning, client.StatusPaused,
					client.StatusMissing, client.StatusStopped, client.StatusError}
			}
			list, err := c.ListSandboxes(cmd.Context(), opts)
			if err != nil {
				return explain(err, "listing sandboxes")
			}
			if list == nil {
				list = []client.Sandbox{}
			}
			rows := make([][]string, 0, len(list))
			for _, s := range list {
				rows = append(rows, row(s))
			}
			return out.print(cmd, list, header, rows)
		},
	}
	ls.Flags().BoolVarP(&all, "all", "a", false, "include stopped sandboxes")
	ls.Flags().StringArrayVar(&filter, "metadata", nil, "KEY=VALUE: only sandboxes labelled so (repeatable)")

	byID := func(use, short, what string, call func(*client.Client, *cobra.Command, string) (*client.Sandbox, error)) *cobra.Command {
		return &cobra.Command{
			Use:               use + " ID",
			Short:             short,
			Args:              cobra.ExactArgs(1),
			ValidArgsFunction: completeSandboxIDs,
			RunE: func(cmd *cobra.Command, args []string) error {
				c, _, err := newAPIClient(needAPIKey)
				if err != nil {
					return err
				}
				s, err := call(c, cmd, args[0])
				if err != nil {
					return explain(err, what+" sandbox "+args[0])
				}
				if s == nil {
					return nil
				}
				return one(cmd, s)
			},
		}
	}
	get := byID("get", "Show a sandbox", "getting", func(c *client.Client, cmd *cobra.Command, id string) (*client.Sandbox, error) {
		return c.GetSandbox(cmd.Context(), id)
	})
	rm := byID("rm", "Destroy a sandbox", "destroying", func(c *client.Client, cmd *cobra.Command, id string) (*client.Sandbox, error) {
		return nil, c.DestroySandbox(cmd.Context(), id)
	})
	pause := byID("pause", "Pause a running sandbox to disk", "pausing", func(c *client.Client, cmd *cobra.Command, id string) (*client.Sandbox, error) {
		return c.PauseSandbox(cmd.Context(), id)
	})
	resume := byID("resume", "Resume a paused sandbox", "resuming", func(c *client.Client, cmd *cobra.Command, id string) (*client.Sandbox, error) {
		return c.ResumeSandbox(cmd.Context(), id)
	})
	cmd.AddCommand(create, ls, get, rm, pause, resume)
	return cmd
}

// snapshotCommand is `wrenn snapshot`: the team's snapshot templates.
func snapshotCommand() *cobra.Command {
	var out output
	cmd := &cobra.Command{Use: "snapshot", Aliases: []string{"snapshots"}, Short: "Manage snapshot templates"}
	addJSONFlag(cmd, &out)
	header := []string{"NAME", "TYPE", "VCPUS", "MEMORY", "SIZE", "CREATED"}
	row := func(t client.Template) []string {
		v, m := "-", "-"
		if t.VCPUs != nil {
			v = strconv.Itoa(*t.VCPUs)
		}
		if t.MemoryMB != nil {
			m = fmt.Sprintf("%d MiB", *t.MemoryMB)
		}
		return []string{t.Name, string(t.Type), v, m, humanBytes(t.SizeBytes), t.CreatedAt.Local().Format(time.DateTime)}
	}

	var req client.CreateSnapshotRequest
	create := &cobra.Command{
		Use:               "create SANDBOX_ID",
		Short:             "Snapshot a running sandbox into a template (the sandbox ends)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeSandboxIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := newAPIClient(needAPIKey)
			if err != nil {
				return err
			}
			req.SandboxID = args[0]
			t, err := c.CreateSnapshot(cmd.Context(), req)
			if err != nil {
				return explain(err, "snapshotting sandbox "+args[0])
			}
			return out.print(cmd, t, header, [][]string{row(*t)})
		},
	}
	create.Flags().StringVar(&req.Name, "name", "", "the template's name (default: made up)")
	create.Flags().BoolVar(&req.Overwrite, "overwrite", false, "replace a snapshot of the same name")

	var all bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List snapshot templates",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := newAPIClient(needAPIKey)
			if err != nil {
				return err
			}
			typ := client.TemplateSnapshot
			if all {
				typ = ""
			}
			list, err := c.ListSnapshots(cmd.Context(), typ)
			if err != nil {
				return explain(err, "listing snapshots")
			}
			if list == nil {
				list = []client.Template{}
			}
			rows := make([][]string, 0, len(list))
			for _, t := range list {
				rows = append(rows, row(t))
			}
			return out.print(cmd, list, header, rows)
		},
	}
	ls.Flags().BoolVarP(&all, "all", "a", false, "include base templates")

	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Delete a snapshot template",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := newAPIClient(needAPIKey)
			if err != nil {
				return err
			}
			if err := c.DeleteSnapshot(cmd.Context(), args[0]); err != nil {
				return explain(err, "deleting snapshot "+args[0])
			}
			return nil
		},
	}
	cmd.AddCommand(create, ls, rm)
	return cmd
}

// completeSandboxIDs offers the team's sandbox IDs to shell completion.
func completeSandboxIDs(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, _, err := newAPIClient(needAPIKey)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	list, err := c.ListSandboxes(cmd.Context(), client.ListOptions{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ids := make([]string, 0, len(list))
	for _, s := range list {
		ids = append(ids, s.ID+"\t"+string(s.Status)+" "+s.Template)
	}
	return ids, cobra.ShellCompDirectiveNoFileComp
}

func formatPairs(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
