package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client calls one Wrenn server. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	http      *http.Client
	apiKey    string
	token     string
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey authenticates sandbox, file and snapshot calls with an API
// key, sent as X-API-Key.
func WithAPIKey(key string) Option { return func(c *Client) { c.apiKey = key } }

// WithToken authenticates account calls (API keys) with a JWT from Signup
// or Login, sent as "Authorization: Bearer".
func WithToken(jwt string) Option { return func(c *Client) { c.token = jwt } }

// WithHTTPClient sends requests, WebSocket handshakes included, through hc
// instead of http.DefaultClient (nil keeps it). Its Timeout, if any,
// bounds whole requests, a download's body included, and a WebSocket's
// handshake but not the stream after it; prefer contexts.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.http = hc
		}
	}
}

// WithUserAgent sets the User-Agent of every request.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// DefaultUserAgent is sent unless WithUserAgent says otherwise.
const DefaultUserAgent = "wrenn-go-client"

// New returns a client of the server at baseURL ("http://localhost:8080").
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("base URL %q: want http:// or https:// and a host", baseURL)
	}
	u.Path, u.RawPath, u.RawQuery, u.Fragment = strings.TrimSuffix(u.Path, "/"), "", "", ""
	c := &Client{base: u, http: http.DefaultClient, userAgent: DefaultUserAgent}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// With returns a copy of c with opts applied on top of c's, as after a
// login: c.With(client.WithToken(session.Token)).
func (c *Client) With(opts ...Option) *Client {
	d := *c
	u := *c.base
	d.base = &u
	for _, o := range opts {
		o(&d)
	}
	return &d
}

// BaseURL returns the server's address as given to New.
func (c *Client) BaseURL() string { return c.base.String() }

// url is the base URL, path (already escaped) and the query, if any.
func (c *Client) url(path string, q url.Values) string {
	u := c.base.String() + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// sandboxPath is /v1/sandboxes/{id} and rest.
func sandboxPath(id, rest string) string { return "/v1/sandboxes/" + url.PathEscape(id) + rest }

// header sets the credentials and the user agent.
func (c *Client) header(h http.Header) {
	if c.apiKey != "" {
		h.Set("X-API-Key", c.apiKey)
	}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	if c.userAgent != "" {
		h.Set("User-Agent", c.userAgent)
	}
}

// send sends a request and returns its response when the status is 2xx;
// any other status is an *Error and the body is closed.
func (c *Client) send(ctx context.Context, method, u, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if _, ok := body.(*io.PipeReader); ok {
		// Streamed: say so, so that no transport wrapper takes a length of
		// 0 at its word and reads the body whole first.
		req.ContentLength = -1
	}
	c.header(req.Header)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, errorFrom(resp)
	}
	return resp, nil
}

// sendJSON sends in as JSON to path and returns the 2xx response.
func (c *Client) sendJSON(ctx context.Context, method, path string, in any) (*http.Response, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	return c.send(ctx, method, c.url(path, nil), "application/json", bytes.NewReader(b))
}

// do sends in as JSON (none if nil) and decodes a JSON answer into out
// (discarded if nil).
func (c *Client) do(ctx context.Context, method, u string, in, out any) error {
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	resp, err := c.send(ctx, method, u, ct, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s answer: %w", method, resp.Request.URL.Path, err)
	}
	return nil
}

// errClosed is what a stream's Recv returns after Close.
var errClosed = errors.New("wrenn: stream closed")
