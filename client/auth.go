package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Session is what signing up or logging in returns. Token is a JWT for
// WithToken, valid for 6 hours.
type Session struct {
	Token  string `json:"token"`
	UserID string `json:"user_id"`
	TeamID string `json:"team_id"`
	Email  string `json:"email"`
}

type credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// Signup creates an account (and its team) and returns its session. A
// taken email is a conflict; a bad email or a short password, invalid.
func (c *Client) Signup(ctx context.Context, email, password string) (*Session, error) {
	var s Session
	if err := c.do(ctx, http.MethodPost, c.url("/v1/auth/signup", nil), credentials{email, password}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Login returns a session for an account; bad credentials are unauthorized.
func (c *Client) Login(ctx context.Context, email, password string) (*Session, error) {
	var s Session
	if err := c.do(ctx, http.MethodPost, c.url("/v1/auth/login", nil), credentials{email, password}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// APIKey is one of a team's API keys. Key, the plaintext, is set only in
// what CreateAPIKey returns: the server never shows it again.
type APIKey struct {
	ID        string     `json:"id"`
	TeamID    string     `json:"team_id"`
	Name      string     `json:"name"`
	KeyPrefix string     `json:"key_prefix"`
	CreatedAt time.Time  `json:"created_at"`
	LastUsed  *time.Time `json:"last_used"`
	Key       string     `json:"key"`
}

// CreateAPIKey makes an API key for the caller's team (needs WithToken).
// An empty name is the server's default, "Unnamed API Key".
func (c *Client) CreateAPIKey(ctx context.Context, name string) (*APIKey, error) {
	in := struct {
		Name string `json:"name,omitempty"`
	}{name}
	var k APIKey
	if err := c.do(ctx, http.MethodPost, c.url("/v1/api-keys", nil), in, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// ListAPIKeys lists the team's API keys, without their plaintext (needs
// WithToken).
func (c *Client) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	var ks []APIKey
	if err := c.do(ctx, http.MethodGet, c.url("/v1/api-keys", nil), nil, &ks); err != nil {
		return nil, err
	}
	return ks, nil
}

// DeleteAPIKey deletes one of the team's API keys (needs WithToken).
func (c *Client) DeleteAPIKey(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, c.url("/v1/api-keys/"+url.PathEscape(id), nil), nil, nil)
}
