package httpapi

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// The HTTP edge: what keeps slow or greedy clients from holding the
// server's connections. Headers must arrive within the server's
// ReadHeaderTimeout (cmd/wrenn); request bodies must keep a minimum pace
// (pacedBody); and each client address holds a bounded number of
// connections (LimitConns). Long exec streams, streamed transfers and
// idle keep-alive connections are unaffected: they send no body, send it
// at speed, or are bounded by the server's IdleTimeout.

// Defaults for Config's body pace, like Apache's mod_reqtimeout
// (body=20,MinRate=500): 20 s to begin, and one second more for each 500
// bytes received.
const (
	DefaultBodyGrace   = 20 * time.Second
	DefaultMinBodyRate = 500 // bytes per second
)

// paceBodies holds every request body to the pace: a client that
// trickles its body past its deadline has its reads fail and its
// connection closed.
func (s *Server) paceBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			r.Body = &pacedBody{ReadCloser: r.Body, rc: http.NewResponseController(w), start: time.Now(),
				grace: s.bodyGrace, rate: s.minBodyRate}
		}
		next.ServeHTTP(w, r)
	})
}

// pacedBody moves its connection's read deadline along as bytes arrive,
// and lifts it once the body ends, so that a long answer (a download)
// is not cut by a deadline meant for the request.
type pacedBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	grace time.Duration
	rate  int64
	n     int64
	done  bool
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if !b.done {
		_ = b.rc.SetReadDeadline(b.start.Add(b.grace + time.Duration(b.n/b.rate)*time.Second))
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	// Any other error (the deadline among them) leaves the deadline, so
	// that the server's drain of what is left cannot wait on a trickle.
	return n, err
}

// DefaultConnsPerClient bounds the connections one client address holds.
const DefaultConnsPerClient = 128

// LimitConns returns a listener that closes, at once, each connection
// from an address that already holds perClient of them.
func LimitConns(ln net.Listener, perClient int) net.Listener {
	return &limitListener{Listener: ln, max: perClient, open: make(map[string]int)}
}

type limitListener struct {
	net.Listener
	max  int
	mu   sync.Mutex
	open map[string]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := addrHost(c.RemoteAddr())
		l.mu.Lock()
		over := l.open[host] >= l.max
		if !over {
			l.open[host]++
		}
		l.mu.Unlock()
		if over {
			c.Close()
			continue
		}
		return &countedConn{Conn: c, l: l, host: host}, nil
	}
}

func addrHost(a net.Addr) string {
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

type countedConn struct {
	net.Conn
	l    *limitListener
	host string
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.open[c.host]--; c.l.open[c.host] <= 0 {
			delete(c.l.open, c.host)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
