package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenTTL is how long a login's JWT is valid.
const TokenTTL = 6 * time.Hour

const tokenIssuer = "wrenn"

// Claims is what a Wrenn JWT asserts.
type Claims struct {
	TeamID string `json:"team_id"`
	Email  string `json:"email"`
	jwt.RegisteredClaims
}

// Tokens issues and checks HS256 JWTs with one secret.
type Tokens struct {
	secret []byte
	now    func() time.Time
}

// NewTokens returns a Tokens signing with secret. now is the clock.
func NewTokens(secret []byte, now func() time.Time) *Tokens {
	return &Tokens{secret: secret, now: now}
}

// Issue returns a signed token for the user acting in team.
func (t *Tokens) Issue(userID, teamID, email string) (string, error) {
	now := t.now()
	claims := Claims{
		TeamID: teamID,
		Email:  email,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    tokenIssuer,
			Subject:   userID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(TokenTTL)),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

var errBadToken = errors.New("invalid token")

// Parse verifies token's signature, algorithm, issuer and expiry and
// returns its claims.
func (t *Tokens) Parse(token string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(tokenIssuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(t.now),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadToken, err)
	}
	if c.Subject == "" || c.TeamID == "" {
		return nil, errBadToken
	}
	return &c, nil
}
