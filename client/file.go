package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"path"
	"time"
)

// Kinds of FileEntry.
const (
	FileTypeFile      = "file"
	FileTypeDirectory = "directory"
	FileTypeSymlink   = "symlink"
)

// FileEntry describes a file, directory or symbolic link in a sandbox (a
// link itself, not its target).
type FileEntry struct {
	Name          string    // the last element of Path
	Path          string    // absolute
	Type          string    // a FileType constant
	Size          int64     //
	Mode          uint32    // permission bits with setuid, setgid and sticky
	Permissions   string    // as ls -l shows them: "-rwxr-xr-x"
	Owner, Group  string    //
	ModifiedAt    time.Time // to the second
	SymlinkTarget string    // set for symlinks
}

// fileEntry is FileEntry on the wire.
type fileEntry struct {
	Name          string  `json:"name"`
	Path          string  `json:"path"`
	Type          string  `json:"type"`
	Size          int64   `json:"size"`
	Mode          uint32  `json:"mode"`
	Permissions   string  `json:"permissions"`
	Owner         string  `json:"owner"`
	Group         string  `json:"group"`
	ModifiedAt    int64   `json:"modified_at"`
	SymlinkTarget *string `json:"symlink_target"`
}

func (e fileEntry) entry() FileEntry {
	out := FileEntry{Name: e.Name, Path: e.Path, Type: e.Type, Size: e.Size, Mode: e.Mode,
		Permissions: e.Permissions, Owner: e.Owner, Group: e.Group, SymlinkTarget: deref(e.SymlinkTarget)}
	if e.ModifiedAt != 0 {
		out.ModifiedAt = time.Unix(e.ModifiedAt, 0)
	}
	return out
}

// WriteFile writes data to the absolute path in a sandbox, replacing any
// file there, in one request that the server bounds (100 MiB by default;
// over it is CodeTooLarge). Use UploadFile for large files.
func (c *Client) WriteFile(ctx context.Context, id, name string, data []byte) error {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if err := writeForm(mw, name, bytes.NewReader(data)); err != nil {
		return err
	}
	resp, err := c.send(ctx, http.MethodPost, c.url(sandboxPath(id, "/files/write"), nil), mw.FormDataContentType(), &body)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// UploadFile streams r to the absolute path in a sandbox, of any size:
// the body is produced as it is sent, so r is never held whole. It
// returns once r's last Read has returned.
func (c *Client) UploadFile(ctx context.Context, id, name string, r io.Reader) error {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(writeForm(mw, name, r)) // nil closes cleanly
	}()
	resp, err := c.send(ctx, http.MethodPost, c.url(sandboxPath(id, "/files/stream/write"), nil), mw.FormDataContentType(), pr)
	// The server may answer before it has read everything (an error): the
	// writer must not wait on a reader that has gone.
	pr.CloseWithError(io.ErrClosedPipe)
	<-done
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// writeForm writes the multipart form of an upload: path first, as the
// server requires, then the file.
func writeForm(mw *multipart.Writer, name string, r io.Reader) error {
	if err := mw.WriteField("path", name); err != nil {
		return err
	}
	part, err := mw.CreateFormFile("file", path.Base(name))
	if err != nil {
		return err
	}
	if _, err := io.Copy(part, r); err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	return mw.Close()
}

// ReadFile streams the file at the absolute path in a sandbox; the caller
// closes it. A transfer cut short is an error of Read, never a short file
// that looks whole.
func (c *Client) ReadFile(ctx context.Context, id, name string) (io.ReadCloser, error) {
	resp, err := c.sendJSON(ctx, http.MethodPost, sandboxPath(id, "/files/stream/read"), pathBody{name})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// ReadFileBytes reads the whole file at the absolute path in a sandbox,
// through the non-streaming endpoint; use ReadFile for large files.
func (c *Client) ReadFileBytes(ctx context.Context, id, name string) ([]byte, error) {
	resp, err := c.sendJSON(ctx, http.MethodPost, sandboxPath(id, "/files/read"), pathBody{name})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

type pathBody struct {
	Path string `json:"path"`
}

// ListDir lists the directory at path, each directory before its
// contents, in name order; depth 1 (or 0) is its children, each more
// descends one level further.
func (c *Client) ListDir(ctx context.Context, id, path string, depth int) ([]FileEntry, error) {
	in := struct {
		Path  string `json:"path"`
		Depth int    `json:"depth,omitempty"`
	}{path, depth}
	var out struct {
		Entries []fileEntry `json:"entries"`
	}
	if err := c.do(ctx, http.MethodPost, c.url(sandboxPath(id, "/files/list"), nil), in, &out); err != nil {
		return nil, err
	}
	es := make([]FileEntry, len(out.Entries))
	for i, e := range out.Entries {
		es[i] = e.entry()
	}
	return es, nil
}

// MakeDir creates a directory, and with parents its missing parents. An
// existing path is a conflict.
func (c *Client) MakeDir(ctx context.Context, id, path string, parents bool) (FileEntry, error) {
	in := struct {
		Path    string `json:"path"`
		Parents bool   `json:"parents"`
	}{path, parents}
	return c.entry(ctx, "/files/mkdir", id, in)
}

// Remove removes a file, or a directory and everything in it.
func (c *Client) Remove(ctx context.Context, id, path string) error {
	return c.do(ctx, http.MethodPost, c.url(sandboxPath(id, "/files/remove"), nil), pathBody{path}, nil)
}

// Stat describes a path (a symbolic link itself, not its target).
func (c *Client) Stat(ctx context.Context, id, path string) (FileEntry, error) {
	return c.entry(ctx, "/files/stat", id, pathBody{path})
}

// Move renames src to dst, which must not exist; it returns the entry at
// dst.
func (c *Client) Move(ctx context.Context, id, src, dst string) (FileEntry, error) {
	in := struct {
		Source      string `json:"source"`
		Destination string `json:"destination"`
	}{src, dst}
	return c.entry(ctx, "/files/move", id, in)
}

func (c *Client) entry(ctx context.Context, rest, id string, in any) (FileEntry, error) {
	var out struct {
		Entry fileEntry `json:"entry"`
	}
	if err := c.do(ctx, http.MethodPost, c.url(sandboxPath(id, rest), nil), in, &out); err != nil {
		return FileEntry{}, err
	}
	return out.Entry.entry(), nil
}
