package fleet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"

	"github.com/wrennhq/wrenn"
)

// TokenPrefix starts every registration token.
const TokenPrefix = "wrh_"

const tokenRandomBytes = 32

// newToken returns a fresh registration token and its SHA-256, which is
// all the store keeps.
func newToken() (token string, hash []byte) {
	b := make([]byte, tokenRandomBytes)
	rand.Read(b) // never fails on Linux; panics rather than return weak bytes
	token = TokenPrefix + hex.EncodeToString(b)
	return token, HashToken(token)
}

// HashToken returns the SHA-256 that stands for a registration token in
// the store.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func looksLikeToken(s string) bool {
	rest, ok := strings.CutPrefix(s, TokenPrefix)
	if !ok || len(rest) != 2*tokenRandomBytes {
		return false
	}
	_, err := hex.DecodeString(rest)
	return err == nil
}

// RegenerateToken gives a pending host a new registration token, which
// replaces (and so revokes) any earlier one: for a registration that
// failed after its token was used, or a token that expired or leaked. The
// host must be pending (EConflict otherwise); who may do it is who may
// change the host.
func (s *Service) RegenerateToken(ctx context.Context, c Caller, id string) (*wrenn.Host, string, error) {
	a, err := s.actor(ctx, c)
	if err != nil {
		return nil, "", err
	}
	if _, err := s.host(ctx, a, id, true); err != nil {
		return nil, "", err
	}
	token, hash := newToken()
	now := s.now().UTC()
	h, err := s.hosts.SetHostToken(ctx, id, hash, now.Add(s.tokenTTL), now)
	if err != nil {
		return nil, "", err
	}
	s.log.InfoContext(ctx, "host registration token regenerated", slog.String(attrHostID, id), slog.String(attrUserID, c.UserID))
	return h, token, nil
}

var errBadToken = wrenn.Errorf(wrenn.EUnauthorized, "invalid or expired registration token")

// TokenHost returns the pending host a registration token was issued for,
// if the token is its current one and has not expired; otherwise
// EUnauthorized, alike for every reason. It is what an agent's
// registration checks (Link.Register); it uses nothing up.
func (s *Service) TokenHost(ctx context.Context, token string) (*wrenn.Host, error) {
	if !looksLikeToken(token) {
		return nil, errBadToken
	}
	hash := HashToken(token)
	h, err := s.hosts.HostByTokenHash(ctx, hash)
	if wrenn.ErrorCode(err) == wrenn.ENotFound {
		return nil, errBadToken
	}
	if err != nil {
		return nil, fmt.Errorf("registration token: %w", err)
	}
	// The lookup is by hash; the comparison guards against a store that
	// matched loosely, in constant time.
	if subtle.ConstantTimeCompare(h.TokenHash, hash) != 1 || h.Status != wrenn.HostPending ||
		h.TokenExpiresAt == nil || !s.now().Before(*h.TokenExpiresAt) {
		return nil, errBadToken
	}
	return h, nil
}
