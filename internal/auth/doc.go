// Package auth owns Wrenn's credentials: password hashing (argon2id), the
// JWTs that accounts log in with, the API keys that sandbox work uses, and the
// authenticated caller carried in a request's context. Its only state is
// a short-lived cache of verified API keys (keycache.go); accounts and keys
// are persisted by a store behind small interfaces declared where they are
// used.
package auth
