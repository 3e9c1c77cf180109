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
	var body io.Reader = file
	var lr *limitReader
	if limit >= 0 {
		lr = &limitReader{r: file, left: limit}
		body = lr
	}
	err = s.control.WriteFile(r.Context(), caller(r).TeamID, r.PathValue("id"), path, body)
	if lr != nil && lr.over {
		err = tooLarge(limit)
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

// limitReader fails once more than left bytes have been read, and
// remembers that it did.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		l.over = true
		return 0, wrenn.Errorf(wrenn.ETooLarge, "file too large")
	}
	return n, err
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
