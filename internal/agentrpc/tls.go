package agentrpc

import (
	"crypto/tls"
	"io"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"github.com/wrennhq/wrenn/internal/agentrpc/agentv1/agentv1connect"
)

// The agent link of joined hosts (issue 13): the same RPC over HTTP/2 on
// mutual TLS, with no bearer token. Who may call is the TLS layer's to
// decide (internal/fleet's configurations); these only carry the RPC.

// NewTLSHandler returns the HTTP handler serving host to callers whose
// TLS connection presented a client certificate; the server's tls.Config
// decides which certificates are admitted. A request without TLS or
// without a client certificate is refused, whatever the listener.
func NewTLSHandler(host Host) http.Handler {
	path, h := agentv1connect.NewAgentServiceHandler(&server{host: host}, connect.WithReadMaxBytes(maxRequest), connect.WithSendMaxBytes(maxResponse))
	mux := http.NewServeMux()
	mux.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"code":"unauthenticated","message":"a client certificate is required"}`)
			return
		}
		h.ServeHTTP(w, r)
	}))
	return mux
}

// DialTLS returns a client of the agent at addr ("host:port") over HTTP/2
// on TLS with cfg, which presents the caller's certificate and checks the
// agent's.
func DialTLS(addr string, cfg *tls.Config) *Client {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	tr := &http.Transport{TLSClientConfig: cfg, Protocols: &protocols, ForceAttemptHTTP2: true,
		MaxIdleConns: 16, IdleConnTimeout: time.Minute, TLSHandshakeTimeout: 10 * time.Second, HTTP2: fileFrames()}
	hc := &http.Client{Transport: tr}
	return &Client{rpc: agentv1connect.NewAgentServiceClient(hc, "https://"+addr,
		connect.WithReadMaxBytes(maxResponse), connect.WithSendMaxBytes(maxRequest), noGzip())}
}
