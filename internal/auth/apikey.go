package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// APIKeyPrefix starts every plaintext API key.
const APIKeyPrefix = "wrn_"

const apiKeyRandomBytes = 32

// NewAPIKey returns a fresh plaintext key, its SHA-256 and the display
// prefix kept alongside the hash.
func NewAPIKey() (plaintext string, hash []byte, display string) {
	b := make([]byte, apiKeyRandomBytes)
	rand.Read(b)
	plaintext = APIKeyPrefix + hex.EncodeToString(b)
	return plaintext, HashAPIKey(plaintext), plaintext[:len(APIKeyPrefix)+8] + "..."
}

// HashAPIKey returns the SHA-256 that identifies plaintext in the store.
func HashAPIKey(plaintext string) []byte {
	h := sha256.Sum256([]byte(plaintext))
	return h[:]
}

// LooksLikeAPIKey reports whether s has the shape of a Wrenn API key, so
// that garbage is refused without a store lookup.
func LooksLikeAPIKey(s string) bool {
	rest, ok := strings.CutPrefix(s, APIKeyPrefix)
	if !ok || len(rest) != 2*apiKeyRandomBytes {
		return false
	}
	_, err := hex.DecodeString(rest)
	return err == nil
}
