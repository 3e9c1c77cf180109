package wrenn

import (
	"net/netip"
	"slices"
	"testing"
)

func TestParseEgressRule(t *testing.T) {
	good := map[string]string{
		"1.2.3.4":                  "1.2.3.4/32",
		"198.51.100.7/24":          "198.51.100.0/24",
		"Example.COM.":             "example.com",
		"*.example.com":            "*.example.com",
		"pypi.org":                 "pypi.org",
		"a-b.c_d.example":          "a-b.c_d.example",
		" files.pythonhosted.org ": "files.pythonhosted.org",
	}
	for in, want := range good {
		r, err := ParseEgressRule(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if r.String() != want {
			t.Errorf("%q: got %q, want %q", in, r, want)
		}
	}
	for _, in := range []string{"", "localhost", "1.2.3", "1.2.3.4/33", "::1", "2001:db8::/32", "-a.com", "a..com",
		"*.", "ex ample.com", "http://example.com", "*.*.com"} {
		if _, err := ParseEgressRule(in); ErrorCode(err) != EInvalid {
			t.Errorf("%q: got %v, want invalid", in, err)
		}
	}
}

func TestEgressRuleMatches(t *testing.T) {
	plain, _ := ParseEgressRule("example.com")
	wild, _ := ParseEgressRule("*.example.com")
	for _, c := range []struct {
		name        string
		plain, wild bool
	}{
		{"example.com", true, false},
		{"api.example.com", true, true},
		{"a.b.example.com", true, true},
		{"badexample.com", false, false},
		{"example.com.evil.net", false, false},
	} {
		if got := plain.Matches(c.name); got != c.plain {
			t.Errorf("example.com matches %q: %v", c.name, got)
		}
		if got := wild.Matches(c.name); got != c.wild {
			t.Errorf("*.example.com matches %q: %v", c.name, got)
		}
	}
}

func TestNetworkNormalize(t *testing.T) {
	opened := []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}
	n, err := Network{Internet: false, AllowOut: []string{"0.0.0.0/0", "Pypi.org", "pypi.org", "10.20.1.0/24"},
		DenyOut: []string{"10.0.0.0/8", "evil.example"}}.Normalize(opened)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"0.0.0.0/0", "pypi.org", "10.20.1.0/24"}; !slices.Equal(n.AllowOut, want) {
		t.Errorf("allow_out %q, want %q", n.AllowOut, want)
	}
	for _, bad := range []string{"10.1.0.0/16", "192.168.1.1", "127.0.0.1", "169.254.169.254", "10.20.0.0/15"} {
		_, err := Network{AllowOut: []string{bad}}.Normalize(opened)
		if ErrorCode(err) != EInvalid {
			t.Errorf("allow %s: %v, want invalid", bad, err)
		}
	}
	many := make([]string, MaxEgressRules+1)
	for i := range many {
		many[i] = "1.1.1.1"
	}
	if _, err := (Network{DenyOut: many}).Normalize(nil); ErrorCode(err) != EInvalid {
		t.Errorf("too many rules: %v", err)
	}
}
