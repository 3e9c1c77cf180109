package httpapi

import (
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"

	"github.com/wrennhq/wrenn"
)

// maxPathField bounds the multipart "path" field.
const maxPathField = 4096

// uploadFile is the non-streaming upload: bodies over the configured limit
// are refused with 413, and the guest keeps no partial file.
func (s *Server) uploadFile(w http.ResponseWriter, r *http.Request) {
	s.upload(w, r, s.maxUpload)
}

// streamUploadFile streams any size through to the guest.
func (s *Server) streamUploadFile(w http.ResponseWriter, r *http.Request) {
	s.upload(w, r, -1)
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request, limit int64) {
	if limit >= 0 && r.ContentLength > limit+maxPathField+4096 {
		s.writeError(w, r, tooLarge(limit))
		return
	}
	path, file, err := openUpload(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body := &uploadBody{r: file, limit: limit, left: limit}
	err = s.control.WriteFile(r.Context(), caller(r).TeamID, r.PathValue("id"), path, body)
	if body.err != nil {
		// The body's own fault decides, whatever the agent made of it.
		err = body.err
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func tooLarge(limit int64) error {
	return wrenn.Errorf(wrenn.ETooLarge, "file must be at most %d bytes here; use /files/stream/write for larger files", limit)
}

// openUpload reads the multipart form up to the start of the "file" part
// and returns the destination path and the part to stream from. The
// "path" field must come first so the file never needs buffering.
func openUpload(r *http.Request) (string, io.Reader, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return "", nil, wrenn.Errorf(wrenn.EUnsupportedMedia, "request body must be multipart/form-data with path and file fields")
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	path, seenPath := "", false
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			if !seenPath {
				return "", nil, wrenn.Errorf(wrenn.EInvalid, "the path field is required")
			}
			return "", nil, wrenn.Errorf(wrenn.EInvalid, "the file field is required")
		}
		if err != nil {
			return "", nil, wrenn.Errorf(wrenn.EInvalid, "malformed multipart body")
		}
		switch p.FormName() {
		case "path":
			b, err := io.ReadAll(io.LimitReader(p, maxPathField+1))
			if err != nil {
				return "", nil, wrenn.Errorf(wrenn.EInvalid, "malformed multipart body")
			}
			if len(b) > maxPathField {
				return "", nil, wrenn.Errorf(wrenn.EInvalid, "path must be at most %d bytes", maxPathField)
			}
			path, seenPath = string(b), true
		case "file":
			if !seenPath {
				return "", nil, wrenn.Errorf(wrenn.EInvalid, "the path field must come before the file field")
			}
			return path, p, nil
		}
	}
}

// uploadBody is the file part of an upload as the agent reads it. It
// fails once more than limit bytes have been read (a negative limit is
// none), and when the request body ends before the part does; either way
// the agent sees the error, so the guest keeps nothing, and err says what
// to answer.
type uploadBody struct {
	r     io.Reader
	limit int64
	left  int64
	err   error // the first failure, a *wrenn.Error
}

func (b *uploadBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.limit >= 0 && int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	if b.limit >= 0 {
		if b.left -= int64(n); b.left < 0 {
			b.err = tooLarge(b.limit)
			return 0, b.err
		}
	}
	switch {
	case err == nil || errors.Is(err, io.EOF): // the part ended at its boundary
		return n, err
	case errors.Is(err, io.ErrUnexpectedEOF):
		b.err = wrenn.Errorf(wrenn.EInvalid, "the upload was incomplete: the request body ended before the multipart closing boundary")
	default:
		b.err = wrenn.Errorf(wrenn.EInvalid, "the upload was incomplete: the request body could not be read")
	}
	return n, b.err
}

type readFileRequest struct {
	Path string `json:"path"`
}

// downloadFile streams a guest file out; both read endpoints use it.
func (s *Server) downloadFile(w http.ResponseWriter, r *http.Request) {
	var req readFileRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	rc, err := s.control.ReadFile(r.Context(), caller(r).TeamID, r.PathValue("id"), req.Path)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil {
		// The status is out: the only honest signal left is to cut the
		// connection, so the client sees a broken transfer, never a short
		// file that looks complete.
		panic(http.ErrAbortHandler)
	}
}
