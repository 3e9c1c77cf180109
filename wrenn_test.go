package wrenn_test

import (
	"strings"
	"testing"

	"github.com/wrennhq/wrenn"
)

func TestValidID(t *testing.T) {
	for range 100 {
		if id := wrenn.NewID(wrenn.PrefixSandbox); !wrenn.ValidID(wrenn.PrefixSandbox, id) {
			t.Fatalf("NewID made %q, which ValidID refuses", id)
		}
	}
	good := wrenn.NewID(wrenn.PrefixTeam)
	for _, id := range []string{
		"", "team-", good[:len(good)-1], good + "a", "sb-" + strings.TrimPrefix(good, "team-"),
		"team-../../../etc/pas", "team-aaaaaaaaaaaaaaa1", "team-AAAAAAAAAAAAAAAA", "team-aaaaaaa,aaaaaaaa",
		"team-aaaaaaaa aaaaaaa",
	} {
		if wrenn.ValidID(wrenn.PrefixTeam, id) {
			t.Errorf("ValidID(%q) = true", id)
		}
	}
}
