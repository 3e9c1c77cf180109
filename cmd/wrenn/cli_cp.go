package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/wrennhq/wrenn/client"
)

// remotePath is one side of `wrenn cp`: ID:/path in a sandbox, or a local
// path (ID is "").
type remotePath struct{ id, path string }

// parseCpArg tells a sandbox path (ID:/abs/path) from a local one. A local
// path with a colon can be given as ./name.
func parseCpArg(s string) (remotePath, error) {
	id, p, ok := strings.Cut(s, ":")
	if !ok || id == "" || strings.ContainsAny(id, "/\\.") {
		return remotePath{path: s}, nil
	}
	if !strings.HasPrefix(p, "/") {
		return remotePath{}, fmt.Errorf("%q: the path in a sandbox must be absolute, like %s:/root/file", s, id)
	}
	return remotePath{id: id, path: p}, nil
}

// cpCommand is `wrenn cp SRC DST`: one file streamed to or from a sandbox.
func cpCommand() *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "cp SRC DST",
		Short: "Copy a file to or from a sandbox (ID:/path names the sandbox side)",
		Example: "  wrenn cp data.csv sb-123:/root/data.csv\n" +
			"  wrenn cp sb-123:/root/out.txt ./out.txt",
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeCpArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := parseCpArg(args[0])
			if err != nil {
				return err
			}
			dst, err := parseCpArg(args[1])
			if err != nil {
				return err
			}
			if (src.id == "") == (dst.id == "") {
				return errors.New("one side must be in a sandbox (ID:/path) and the other local")
			}
			c, _, err := newAPIClient(needAPIKey)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			showBar := !quiet && isTerminal(os.Stderr)
			if dst.id != "" { // upload
				f, err := os.Open(src.path)
				if err != nil {
					return err
				}
				defer f.Close()
				fi, err := f.Stat()
				if err != nil {
					return err
				}
				if fi.IsDir() {
					return fmt.Errorf("%s is a directory: wrenn cp copies one file", src.path)
				}
				p := newProgress(os.Stderr, filepath.Base(src.path), fi.Size(), showBar)
				err = c.UploadFile(ctx, dst.id, dst.path, io.TeeReader(f, p))
				p.done()
				return explain(err, "copying to sandbox "+dst.id)
			}
			// download
			name := dst.path
			if fi, err := os.Stat(name); err == nil && fi.IsDir() {
				name = filepath.Join(name, filepath.Base(src.path))
			}
			size := int64(-1)
			if e, err := c.Stat(ctx, src.id, src.path); err == nil {
				size = e.Size
			} else {
				return explain(err, "copying "+src.path+" from sandbox "+src.id)
			}
			r, err := c.ReadFile(ctx, src.id, src.path)
			if err != nil {
				return explain(err, "copying "+src.path+" from sandbox "+src.id)
			}
			defer r.Close()
			tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".part-*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name()) // after the rename, nothing
			p := newProgress(os.Stderr, filepath.Base(src.path), size, showBar)
			_, err = io.Copy(io.MultiWriter(tmp, p), r)
			p.done()
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return explain(err, "copying "+src.path+" from sandbox "+src.id)
			}
			if err := os.Chmod(tmp.Name(), 0o644); err != nil {
				return err
			}
			return os.Rename(tmp.Name(), name)
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

// completeCpArg completes either side of cp: a running sandbox's ID as
// "ID:/", then paths in that sandbox, listed through the API a directory
// at a time; local paths otherwise. It never resumes a paused sandbox.
func completeCpArg(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) >= 2 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, _, err := newAPIClient(needAPIKey)
	if err != nil {
		return nil, cobra.ShellCompDirectiveDefault
	}
	ctx := cmd.Context()
	id, p, remote := strings.Cut(toComplete, ":")
	if !remote {
		if strings.ContainsAny(toComplete, "/.") {
			return nil, cobra.ShellCompDirectiveDefault
		}
		list, err := c.ListSandboxes(ctx, client.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveDefault
		}
		var out []string
		for _, s := range list {
			if s.Status == client.StatusRunning && strings.HasPrefix(s.ID, toComplete) {
				out = append(out, s.ID+":/")
			}
		}
		if len(out) == 0 { // a local file, then
			return nil, cobra.ShellCompDirectiveDefault
		}
		return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
	}
	if sb, err := c.GetSandbox(ctx, id); err != nil || sb.Status != client.StatusRunning {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	dir := p
	if !strings.HasSuffix(dir, "/") {
		dir = path.Dir(dir)
	}
	if !strings.HasPrefix(dir, "/") {
		dir = "/"
	}
	entries, err := c.ListDir(ctx, id, dir, 1)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Path, p) {
			continue
		}
		if e.Type == client.FileTypeDirectory {
			out = append(out, id+":"+e.Path+"/")
		} else {
			out = append(out, id+":"+e.Path)
		}
	}
	return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// progress is a one-line progress bar on a terminal, redrawn at most ten
// times a second; off, it only counts.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	name  string
	total int64
	n     int64
	on    bool
	last  time.Time
	start time.Time
}

func newProgress(w io.Writer, name string, total int64, on bool) *progress {
	return &progress{w: w, name: name, total: total, on: on, start: time.Now()}
}

func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += int64(len(b))
	if p.on && time.Since(p.last) >= 100*time.Millisecond {
		p.last = time.Now()
		p.draw()
	}
	return len(b), nil
}

func (p *progress) draw() {
	const width = 30
	if p.total > 0 {
		filled := int(p.n * width / p.total)
		filled = min(filled, width)
		fmt.Fprintf(p.w, "\r%s [%s%s] %3d%% %s", p.name, strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
			p.n*100/p.total, humanBytes(p.n))
		return
	}
	fmt.Fprintf(p.w, "\r%s %s", p.name, humanBytes(p.n))
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.on {
		p.draw()
		secs := time.Since(p.start).Seconds()
		fmt.Fprintf(p.w, " %s/s\n", humanBytes(int64(float64(p.n)/max(secs, 0.001))))
	}
}
