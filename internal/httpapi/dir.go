package httpapi

import (
	"net/http"

	"github.com/wrennhq/wrenn"
)

// The file system endpoints: list, mkdir and remove as the 0.1.5 contract
// has them, and stat and move beyond it.

// fileEntry is the contract's FileEntry.
type fileEntry struct {
	Name          string  `json:"name"`
	Path          string  `json:"path"`
	Type          string  `json:"type"`
	Size          int64   `json:"size"`
	Mode          uint32  `json:"mode"`
	Permissions   string  `json:"permissions"`
	Owner         string  `json:"owner"`
	Group         string  `json:"group"`
	ModifiedAt    int64   `json:"modified_at"` // Unix seconds
	SymlinkTarget *string `json:"symlink_target"`
}

func toFileEntry(e wrenn.FileEntry) fileEntry {
	out := fileEntry{
		Name: e.Name, Path: e.Path, Type: e.Type, Size: e.Size, Mode: e.Mode,
		Permissions: e.Permissions, Owner: e.Owner, Group: e.Group,
	}
	if !e.ModifiedAt.IsZero() {
		out.ModifiedAt = e.ModifiedAt.Unix()
	}
	if e.Type == wrenn.FileTypeSymlink {
		out.SymlinkTarget = &e.SymlinkTarget
	}
	return out
}

type listDirRequest struct {
	Path  string `json:"path"`
	Depth *int   `json:"depth"` // absent: 1
}

type listDirResponse struct {
	Entries []fileEntry `json:"entries"`
}

func (s *Server) listDir(w http.ResponseWriter, r *http.Request) {
	var req listDirRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	depth := 1
	if req.Depth != nil {
		depth = *req.Depth
	}
	es, err := s.control.ListDir(r.Context(), caller(r).TeamID, r.PathValue("id"), req.Path, depth)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := listDirResponse{Entries: make([]fileEntry, len(es))}
	for i, e := range es {
		out.Entries[i] = toFileEntry(e)
	}
	writeJSON(w, http.StatusOK, out)
}

type makeDirRequest struct {
	Path    string `json:"path"`
	Parents *bool  `json:"parents"` // absent: true, as the 0.1.5 SDK expects
}

// entryResponse answers mkdir, stat and move.
type entryResponse struct {
	Entry fileEntry `json:"entry"`
}

func (s *Server) makeDir(w http.ResponseWriter, r *http.Request) {
	var req makeDirRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	parents := req.Parents == nil || *req.Parents
	e, err := s.control.MakeDir(r.Context(), caller(r).TeamID, r.PathValue("id"), req.Path, parents)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, entryResponse{Entry: toFileEntry(e)})
}

type pathRequest struct {
	Path string `json:"path"`
}

func (s *Server) removePath(w http.ResponseWriter, r *http.Request) {
	var req pathRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.control.Remove(r.Context(), caller(r).TeamID, r.PathValue("id"), req.Path); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) statPath(w http.ResponseWriter, r *http.Request) {
	var req pathRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	e, err := s.control.Stat(r.Context(), caller(r).TeamID, r.PathValue("id"), req.Path)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, entryResponse{Entry: toFileEntry(e)})
}

type moveRequest struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
}

func (s *Server) movePath(w http.ResponseWriter, r *http.Request) {
	var req moveRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	e, err := s.control.Move(r.Context(), caller(r).TeamID, r.PathValue("id"), req.Source, req.Destination)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, entryResponse{Entry: toFileEntry(e)})
}
