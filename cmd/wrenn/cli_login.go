package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/wrennhq/wrenn/client"
)

// loginCommand is `wrenn login`: an account's session, or an API key,
// stored as the profile every other command uses.
func loginCommand() *cobra.Command {
	var url, email, apiKey string
	cmd := &cobra.Command{
		Use:   "login --url URL (--email EMAIL | --api-key KEY)",
		Short: "Store a server's address and your credentials for it",
		Long: "Store a server's address and your credentials for it in your config directory (readable by you alone).\n" +
			"With --email the password is read from " + envCLIPass + ", the terminal (not echoed) or one line of stdin;\n" +
			"the session lets you manage API keys (`wrenn keys create NAME --save` then makes one for sandboxes).\n" +
			"With --api-key the key is stored for sandbox, file and snapshot commands.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if email == "" && apiKey == "" {
				return errors.New("give --email EMAIL to log in to an account, or --api-key KEY to use an API key")
			}
			p, c, err := profileAt(url)
			if err != nil {
				return err
			}
			if apiKey != "" {
				p.APIKey = apiKey
				// Check it, so a typo shows now rather than on first use.
				if _, err := c.With(client.WithAPIKey(apiKey)).ListSandboxes(cmd.Context(), client.ListOptions{}); err != nil {
					return explain(err, "checking the API key")
				}
			}
			if email != "" {
				pw, err := readLoginPassword(cmd.InOrStdin(), cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				s, err := c.Login(cmd.Context(), email, pw)
				if err != nil {
					if client.IsUnauthorized(err) {
						return errors.New("login refused: wrong email or password")
					}
					return explain(err, "logging in")
				}
				p.Email, p.Token = s.Email, s.Token
			}
			path, err := saveProfile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Logged in to %s; saved in %s\n", p.URL, path)
			if p.APIKey == "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "Next: `wrenn keys create NAME --save` makes an API key for sandbox commands.")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "the server's address, like http://localhost:8080 (env "+envCLIURL+")")
	cmd.Flags().StringVar(&email, "email", "", "your account's email")
	cmd.Flags().StringVar(&apiKey, "api-key", "", "an API key to store")
	return cmd
}

// signupCommand is `wrenn signup`: a new account (and its team), logged in
// as `wrenn login --email` would.
func signupCommand() *cobra.Command {
	var url, email string
	cmd := &cobra.Command{
		Use:   "signup --url URL --email EMAIL",
		Short: "Make an account on a server and log in to it",
		Long: "Make an account (and its team) on a server and store the session, as `wrenn login --email` does.\n" +
			"The password (8 characters or more) is read from " + envCLIPass + ", the terminal (not echoed) or one line of stdin.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if email == "" {
				return errors.New("give --email EMAIL: the account's email")
			}
			p, c, err := profileAt(url)
			if err != nil {
				return err
			}
			pw, err := readLoginPassword(cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			s, err := c.Signup(cmd.Context(), email, pw)
			if err != nil {
				return explain(err, "signing up")
			}
			p.Email, p.Token, p.APIKey = s.Email, s.Token, ""
			path, err := saveProfile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Signed up and logged in to %s as %s; saved in %s\n", p.URL, s.Email, path)
			fmt.Fprintln(cmd.ErrOrStderr(), "Next: `wrenn keys create NAME --save` makes an API key for sandbox commands.")
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "the server's address, like http://localhost:8080 (env "+envCLIURL+")")
	cmd.Flags().StringVar(&email, "email", "", "the new account's email")
	return cmd
}

// profileAt loads the stored profile, pointed at url when one is given,
// and a client of its server without credentials.
func profileAt(url string) (profile, *client.Client, error) {
	p, err := loadProfile()
	if err != nil {
		return p, nil, err
	}
	if url != "" {
		p.URL = strings.TrimRight(url, "/")
	}
	if p.URL == "" {
		return p, nil, errors.New("no server: give --url URL (like http://localhost:8080)")
	}
	c, err := client.New(p.URL, client.WithUserAgent("wrenn-cli"))
	if err != nil {
		return p, nil, fmt.Errorf("server URL %q: %w", p.URL, err)
	}
	return p, c, nil
}

// logoutCommand is `wrenn logout`: the stored profile removed.
func logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Forget the stored server and credentials",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := configPath()
			if err != nil {
				return err
			}
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			return nil
		},
	}
}

// readLoginPassword takes the password from the environment, the terminal
// without echo, or one line of in.
func readLoginPassword(in io.Reader, prompt io.Writer) (string, error) {
	if pw := os.Getenv(envCLIPass); pw != "" {
		return pw, nil
	}
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		return "", errors.New("no password: set " + envCLIPass + ", type it at a terminal, or give it on stdin")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// keysCommand is `wrenn keys`: the team's API keys, with the session of
// `wrenn login --email`.
func keysCommand() *cobra.Command {
	var out output
	cmd := &cobra.Command{Use: "keys", Short: "Manage your team's API keys"}
	addJSONFlag(cmd, &out)

	var save bool
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an API key and print it (shown only once)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, p, err := newAPIClient(needToken)
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			k, err := c.CreateAPIKey(cmd.Context(), name)
			if err != nil {
				return explain(err, "creating an API key")
			}
			if save {
				p.APIKey = k.Key
				if _, err := saveProfile(p); err != nil {
					return err
				}
			}
			if out.json {
				return out.print(cmd, k, nil, nil)
			}
			fmt.Fprintln(cmd.OutOrStdout(), k.Key)
			if save {
				fmt.Fprintln(cmd.ErrOrStderr(), "Saved as your profile's API key.")
			} else {
				fmt.Fprintln(cmd.ErrOrStderr(), "Keep it: the server never shows it again. (`--save` stores it in your profile.)")
			}
			return nil
		},
	}
	create.Flags().BoolVar(&save, "save", false, "store the key in your profile for sandbox commands")

	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the team's API keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := newAPIClient(needToken)
			if err != nil {
				return err
			}
			keys, err := c.ListAPIKeys(cmd.Context())
			if err != nil {
				return explain(err, "listing API keys")
			}
			rows := make([][]string, 0, len(keys))
			for _, k := range keys {
				used := "never"
				if k.LastUsed != nil {
					used = k.LastUsed.Local().Format(time.DateTime)
				}
				rows = append(rows, []string{k.ID, k.Name, k.KeyPrefix + "…", k.CreatedAt.Local().Format(time.DateTime), used})
			}
			return out.print(cmd, keys, []string{"ID", "NAME", "PREFIX", "CREATED", "LAST USED"}, rows)
		},
	}

	rm := &cobra.Command{
		Use:   "rm ID",
		Short: "Delete an API key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := newAPIClient(needToken)
			if err != nil {
				return err
			}
			if err := c.DeleteAPIKey(cmd.Context(), args[0]); err != nil {
				return explain(err, "deleting API key "+args[0])
			}
			return nil
		},
	}
	cmd.AddCommand(create, ls, rm)
	return cmd
}
