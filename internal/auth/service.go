package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wrennhq/wrenn"
)

// AccountStore persists users, teams and memberships.
type AccountStore interface {
	CreateAccount(ctx context.Context, u *wrenn.User, t *wrenn.Team) error
	UserByEmail(ctx context.Context, email string) (*wrenn.User, error)
	DefaultTeam(ctx context.Context, userID string) (*wrenn.Team, error)
	IsMember(ctx context.Context, userID, teamID string) (bool, error)
}

// KeyStore persists API keys.
type KeyStore interface {
	CreateAPIKey(ctx context.Context, k *wrenn.APIKey) error
	ListAPIKeys(ctx context.Context, teamID string) ([]*wrenn.APIKey, error)
	DeleteAPIKey(ctx context.Context, teamID, id string) error
	APIKeyByHash(ctx context.Context, hash []byte) (*wrenn.APIKey, error)
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
}

// Password length bounds. The upper bound keeps hashing cost predictable.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 1024
	maxEmailLen    = 254
	maxKeyNameLen  = 200
)

// DefaultAPIKeyName is the name of a key created without one.
const DefaultAPIKeyName = "Unnamed API Key"

// LastUsedResolution bounds how often a key's last_used is written: a
// busy key is not a write per request, and last_used is never staler
// than this.
const LastUsedResolution = 10 * time.Second

// Config wires a Service.
type Config struct {
	Accounts AccountStore
	Keys     KeyStore
	Hasher   *Hasher
	Tokens   *Tokens
	// Throttle slows failed logins; nil makes one on Now.
	Throttle *Throttle
	Now      func() time.Time
	Logger   *slog.Logger
	// SignupClosed refuses signups: the operator creates accounts
	// (CreateAccount, through `wrenn admin user create`).
	SignupClosed bool
	// KeyCacheTTL is how long a verified API key is trusted without
	// asking the store again (keycache.go): 0 means DefaultKeyCacheTTL,
	// a negative value caches nothing.
	KeyCacheTTL time.Duration
}

// Service is the account and credential use cases: signup, login, API key
// management and authenticating requests.
type Service struct {
	accounts AccountStore
	keys     KeyStore
	hasher   *Hasher
	tokens   *Tokens
	throttle *Throttle
	now      func() time.Time
	log      *slog.Logger
	closed   bool // signup
	keyCache *keyCache
}

// NewService returns a Service.
func NewService(c Config) *Service {
	if c.Throttle == nil {
		c.Throttle = NewThrottle(c.Now)
	}
	if c.KeyCacheTTL == 0 {
		c.KeyCacheTTL = DefaultKeyCacheTTL
	}
	return &Service{accounts: c.Accounts, keys: c.Keys, hasher: c.Hasher, tokens: c.Tokens, throttle: c.Throttle, now: c.Now, log: c.Logger,
		closed: c.SignupClosed, keyCache: newKeyCache(c.KeyCacheTTL)}
}

// Session is the result of signup or login.
type Session struct {
	Token  string
	UserID string
	TeamID string
	Email  string
}

var errBadCredentials = wrenn.Errorf(wrenn.EUnauthorized, "invalid email or password")

// ErrSignupClosed is Signup's answer on a server whose operator creates
// the accounts.
var ErrSignupClosed = wrenn.Errorf(wrenn.EForbidden, "signup is closed on this server: ask its operator for an account")

// Signup creates a user, a default team and the membership, and logs in.
// It is refused when signup is closed.
func (s *Service) Signup(ctx context.Context, email, password string) (*Session, error) {
	if s.closed {
		return nil, ErrSignupClosed
	}
	u, t, err := s.CreateAccount(ctx, email, password)
	if err != nil {
		return nil, err
	}
	return s.session(u, t.ID)
}

// CreateAccount creates a user, their default team and the membership,
// whether signup is open or not: it is how an operator adds users.
func (s *Service) CreateAccount(ctx context.Context, email, password string) (*wrenn.User, *wrenn.Team, error) {
	if err := validateEmail(email); err != nil {
		return nil, nil, err
	}
	if n := utf8.RuneCountInString(password); n < MinPasswordLen {
		return nil, nil, wrenn.Errorf(wrenn.EInvalid, "password must be at least %d characters", MinPasswordLen)
	}
	if len(password) > MaxPasswordLen {
		return nil, nil, wrenn.Errorf(wrenn.EInvalid, "password must be at most %d bytes", MaxPasswordLen)
	}
	hash, err := s.hasher.Hash(ctx, password)
	if err != nil {
		return nil, nil, err
	}
	now := s.now().UTC()
	u := &wrenn.User{ID: wrenn.NewID(wrenn.PrefixUser), Email: email, PasswordHash: hash, CreatedAt: now}
	t := &wrenn.Team{ID: wrenn.NewID(wrenn.PrefixTeam), Name: teamName(email), CreatedAt: now}
	if err := s.accounts.CreateAccount(ctx, u, t); err != nil {
		return nil, nil, err
	}
	return u, t, nil
}

// Login checks email and password. Unknown email and wrong password fail
// alike, in message and in time.
//
// Failed logins are throttled (Throttle) by the caller's address in ctx
// (WithClient): a login that must wait is refused before its password is
// even hashed, with the wait in the error.
func (s *Service) Login(ctx context.Context, email, password string) (*Session, error) {
	if email == "" || password == "" || len(email) > maxEmailLen || len(password) > MaxPasswordLen {
		return nil, errBadCredentials
	}
	addr := clientOf(ctx)
	if wait := s.throttle.Wait(email, addr); wait > 0 {
		secs := int64((wait + time.Second - 1) / time.Second)
		return nil, &wrenn.Error{Code: wrenn.ERateLimited, RetryAfter: wait,
			Message: fmt.Sprintf("too many failed logins: try again in %d seconds", secs)}
	}
	u, err := s.accounts.UserByEmail(ctx, email)
	encoded := ""
	switch {
	case err == nil:
		encoded = u.PasswordHash
	case wrenn.ErrorCode(err) != wrenn.ENotFound:
		return nil, err
	}
	ok, err := s.hasher.Verify(ctx, encoded, password)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	if !ok || u == nil {
		s.throttle.Failed(email, addr)
		return nil, errBadCredentials
	}
	s.throttle.Succeeded(email, addr)
	team, err := s.accounts.DefaultTeam(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	return s.session(u, team.ID)
}

func (s *Service) session(u *wrenn.User, teamID string) (*Session, error) {
	tok, err := s.tokens.Issue(u.ID, teamID, u.Email)
	if err != nil {
		return nil, err
	}
	return &Session{Token: tok, UserID: u.ID, TeamID: teamID, Email: u.Email}, nil
}

// AuthenticateToken returns the caller a bearer token stands for.
func (s *Service) AuthenticateToken(ctx context.Context, token string) (Caller, error) {
	c, err := s.tokens.Parse(token)
	if err != nil {
		return Caller{}, wrenn.Errorf(wrenn.EUnauthorized, "invalid or expired token")
	}
	member, err := s.accounts.IsMember(ctx, c.Subject, c.TeamID)
	if err != nil {
		return Caller{}, fmt.Errorf("authenticate token: %w", err)
	}
	if !member {
		return Caller{}, wrenn.Errorf(wrenn.EUnauthorized, "invalid or expired token")
	}
	return Caller{UserID: c.Subject, TeamID: c.TeamID}, nil
}

// AuthenticateAPIKey returns the caller an API key stands for and keeps the
// key's last_used current. A key the store vouched for less than
// KeyCacheTTL ago is not looked up again (keycache.go).
func (s *Service) AuthenticateAPIKey(ctx context.Context, key string) (Caller, error) {
	if !LooksLikeAPIKey(key) {
		return Caller{}, errBadAPIKey
	}
	hash := keyHash(sha256.Sum256([]byte(key)))
	// The cache's expiry is on the clock's monotonic reading (which UTC
	// would strip), so a step of the wall clock cannot stretch it.
	clock := s.now()
	e, ok := s.keyCache.get(hash, clock)
	if !ok {
		var err error
		if e, err = s.lookUpAPIKey(ctx, hash, clock); err != nil {
			return Caller{}, err
		}
	}
	if now := clock.UTC(); now.Sub(e.lastUsed) >= LastUsedResolution && s.keyCache.claimTouch(hash, now) {
		if err := s.keys.TouchAPIKey(ctx, e.caller.APIKeyID, now); err != nil {
			// Authentication stands; a missed timestamp is not worth failing the request.
			s.log.WarnContext(ctx, "touch api key", slog.String("api_key_id", e.caller.APIKeyID), slog.Any("error", err))
		}
	}
	return e.caller, nil
}

var errBadAPIKey = wrenn.Errorf(wrenn.EUnauthorized, "invalid API key")

// lookUpAPIKey finds the key hashed hash in the store and caches it.
func (s *Service) lookUpAPIKey(ctx context.Context, hash keyHash, now time.Time) (cachedKey, error) {
	gen := s.keyCache.generation()
	k, err := s.keys.APIKeyByHash(ctx, hash[:])
	if wrenn.ErrorCode(err) == wrenn.ENotFound {
		return cachedKey{}, errBadAPIKey
	}
	if err != nil {
		return cachedKey{}, fmt.Errorf("authenticate api key: %w", err)
	}
	// The lookup is by hash, so only a key with this hash is found; the
	// comparison guards against a store that matched loosely.
	if subtle.ConstantTimeCompare(k.KeyHash, hash[:]) != 1 {
		return cachedKey{}, errBadAPIKey
	}
	e := cachedKey{hash: hash, caller: Caller{UserID: k.CreatedBy, TeamID: k.TeamID, APIKeyID: k.ID}}
	if k.LastUsed != nil {
		e.lastUsed = *k.LastUsed
	}
	s.keyCache.put(gen, e, now)
	return e, nil
}

// CreateAPIKey makes a key for the caller's team. The plaintext is in the
// returned string and nowhere else.
func (s *Service) CreateAPIKey(ctx context.Context, c Caller, name string) (*wrenn.APIKey, string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		name = DefaultAPIKeyName
	}
	if utf8.RuneCountInString(name) > maxKeyNameLen {
		return nil, "", wrenn.Errorf(wrenn.EInvalid, "name must be at most %d characters", maxKeyNameLen)
	}
	if !utf8.ValidString(name) {
		return nil, "", wrenn.Errorf(wrenn.EInvalid, "name must be valid UTF-8")
	}
	plain, hash, display := NewAPIKey()
	k := &wrenn.APIKey{
		ID:        wrenn.NewID(wrenn.PrefixAPIKey),
		TeamID:    c.TeamID,
		Name:      name,
		KeyPrefix: display,
		KeyHash:   hash,
		CreatedBy: c.UserID,
		CreatedAt: s.now().UTC(),
	}
	if err := s.keys.CreateAPIKey(ctx, k); err != nil {
		return nil, "", err
	}
	return k, plain, nil
}

// ListAPIKeys returns the caller's team's keys.
func (s *Service) ListAPIKeys(ctx context.Context, c Caller) ([]*wrenn.APIKey, error) {
	return s.keys.ListAPIKeys(ctx, c.TeamID)
}

// DeleteAPIKey deletes one of the caller's team's keys.
// The key is forgotten by this process's cache at once, whatever the
// store answered (a failed commit may still have deleted it).
func (s *Service) DeleteAPIKey(ctx context.Context, c Caller, id string) error {
	err := s.keys.DeleteAPIKey(ctx, c.TeamID, id)
	s.keyCache.forget(id)
	return err
}

func validateEmail(email string) error {
	bad := wrenn.Errorf(wrenn.EInvalid, "email must be a valid address")
	if email == "" || len(email) > maxEmailLen {
		return bad
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return bad
	}
	at := strings.LastIndexByte(email, '@')
	if at < 1 || at == len(email)-1 {
		return bad
	}
	return nil
}

func teamName(email string) string {
	local, _, _ := strings.Cut(email, "@")
	return local + "'s team"
}
