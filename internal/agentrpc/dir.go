package agentrpc

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agentrpc/agentv1"
)

// The file system RPCs, both ends. A Host that implements wrenn.FileSystem
// serves them; any other answers Unimplemented.

var _ wrenn.FileSystem = (*Client)(nil)

// errNoFileSystem answers the file system RPCs on a host that cannot serve them.
var errNoFileSystem = connect.NewError(connect.CodeUnimplemented, errors.New("this host agent cannot list or change a sandbox's files"))

func (s *server) fileSystem() (wrenn.FileSystem, error) {
	fsys, ok := s.host.(wrenn.FileSystem)
	if !ok {
		return nil, errNoFileSystem
	}
	return fsys, nil
}

func (s *server) ListDir(ctx context.Context, req *connect.Request[agentv1.ListDirRequest]) (*connect.Response[agentv1.ListDirResponse], error) {
	fsys, err := s.fileSystem()
	if err != nil {
		return nil, err
	}
	es, err := fsys.ListDir(ctx, req.Msg.SandboxId, req.Msg.Path, int(req.Msg.Depth))
	if err != nil {
		return nil, toConnect(err)
	}
	out := make([]*agentv1.FileEntry, len(es))
	for i, e := range es {
		out[i] = entryToProto(e)
	}
	return connect.NewResponse(&agentv1.ListDirResponse{Entries: out}), nil
}

func (s *server) MakeDir(ctx context.Context, req *connect.Request[agentv1.MakeDirRequest]) (*connect.Response[agentv1.MakeDirResponse], error) {
	fsys, err := s.fileSystem()
	if err != nil {
		return nil, err
	}
	e, err := fsys.MakeDir(ctx, req.Msg.SandboxId, req.Msg.Path, req.Msg.Parents)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.MakeDirResponse{Entry: entryToProto(e)}), nil
}

func (s *server) Remove(ctx context.Context, req *connect.Request[agentv1.RemoveRequest]) (*connect.Response[agentv1.RemoveResponse], error) {
	fsys, err := s.fileSystem()
	if err != nil {
		return nil, err
	}
	if err := fsys.Remove(ctx, req.Msg.SandboxId, req.Msg.Path); err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.RemoveResponse{}), nil
}

func (s *server) Stat(ctx context.Context, req *connect.Request[agentv1.StatRequest]) (*connect.Response[agentv1.StatResponse], error) {
	fsys, err := s.fileSystem()
	if err != nil {
		return nil, err
	}
	e, err := fsys.Stat(ctx, req.Msg.SandboxId, req.Msg.Path)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.StatResponse{Entry: entryToProto(e)}), nil
}

func (s *server) Move(ctx context.Context, req *connect.Request[agentv1.MoveRequest]) (*connect.Response[agentv1.MoveResponse], error) {
	fsys, err := s.fileSystem()
	if err != nil {
		return nil, err
	}
	e, err := fsys.Move(ctx, req.Msg.SandboxId, req.Msg.Src, req.Msg.Dst)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&agentv1.MoveResponse{Entry: entryToProto(e)}), nil
}

// fromFileSystemConnect is fromConnect for the file system RPCs, which an
// agent may not serve.
func fromFileSystemConnect(err error) error {
	if connect.CodeOf(err) == connect.CodeUnimplemented {
		return wrenn.Errorf(wrenn.EHostAgent, "the host agent cannot list or change a sandbox's files")
	}
	return fromConnect(err)
}

// ListDir implements wrenn.FileSystem.
func (c *Client) ListDir(ctx context.Context, id, path string, depth int) ([]wrenn.FileEntry, error) {
	resp, err := c.rpc.ListDir(ctx, connect.NewRequest(&agentv1.ListDirRequest{SandboxId: id, Path: path, Depth: int32(min(depth, 1<<30))}))
	if err != nil {
		return nil, fromFileSystemConnect(err)
	}
	out := make([]wrenn.FileEntry, len(resp.Msg.Entries))
	for i, e := range resp.Msg.Entries {
		out[i] = entryFromProto(e)
	}
	return out, nil
}

// MakeDir implements wrenn.FileSystem.
func (c *Client) MakeDir(ctx context.Context, id, path string, parents bool) (wrenn.FileEntry, error) {
	resp, err := c.rpc.MakeDir(ctx, connect.NewRequest(&agentv1.MakeDirRequest{SandboxId: id, Path: path, Parents: parents}))
	if err != nil {
		return wrenn.FileEntry{}, fromFileSystemConnect(err)
	}
	return entryFromProto(resp.Msg.Entry), nil
}

// Remove implements wrenn.FileSystem.
func (c *Client) Remove(ctx context.Context, id, path string) error {
	_, err := c.rpc.Remove(ctx, connect.NewRequest(&agentv1.RemoveRequest{SandboxId: id, Path: path}))
	return fromFileSystemConnect(err)
}

// Stat implements wrenn.FileSystem.
func (c *Client) Stat(ctx context.Context, id, path string) (wrenn.FileEntry, error) {
	resp, err := c.rpc.Stat(ctx, connect.NewRequest(&agentv1.StatRequest{SandboxId: id, Path: path}))
	if err != nil {
		return wrenn.FileEntry{}, fromFileSystemConnect(err)
	}
	return entryFromProto(resp.Msg.Entry), nil
}

// Move implements wrenn.FileSystem.
func (c *Client) Move(ctx context.Context, id, src, dst string) (wrenn.FileEntry, error) {
	resp, err := c.rpc.Move(ctx, connect.NewRequest(&agentv1.MoveRequest{SandboxId: id, Src: src, Dst: dst}))
	if err != nil {
		return wrenn.FileEntry{}, fromFileSystemConnect(err)
	}
	return entryFromProto(resp.Msg.Entry), nil
}

func entryToProto(e wrenn.FileEntry) *agentv1.FileEntry {
	return &agentv1.FileEntry{
		Name: e.Name, Path: e.Path, Type: e.Type, Size: e.Size, Mode: e.Mode,
		Permissions: e.Permissions, Owner: e.Owner, Group: e.Group,
		ModifiedAtUnixNs: unixNano(e.ModifiedAt), SymlinkTarget: e.SymlinkTarget,
	}
}

func entryFromProto(e *agentv1.FileEntry) wrenn.FileEntry {
	if e == nil {
		return wrenn.FileEntry{}
	}
	return wrenn.FileEntry{
		Name: e.Name, Path: e.Path, Type: e.Type, Size: e.Size, Mode: e.Mode,
		Permissions: e.Permissions, Owner: e.Owner, Group: e.Group,
		ModifiedAt: timeFromUnixNano(e.ModifiedAtUnixNs), SymlinkTarget: e.SymlinkTarget,
	}
}
