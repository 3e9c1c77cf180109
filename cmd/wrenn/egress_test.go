package main

import (
	"net/netip"
	"slices"
	"testing"
)

func TestNetworkConfigFromEnv(t *testing.T) {
	c, err := networkConfigFromEnv()
	if err != nil || !c.Default.Internet || len(c.Opened) != 0 {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	t.Setenv(envEgressInternet, "off")
	t.Setenv(envEgressOpen, " 10.20.0.0/16, 192.168.7.9/24 ")
	c, err = networkConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16"), netip.MustParsePrefix("192.168.7.0/24")}
	if c.Default.Internet || !slices.Equal(c.Opened, want) {
		t.Errorf("configured: internet %v, opened %v; want off, %v", c.Default.Internet, c.Opened, want)
	}
	for key, v := range map[string]string{
		envEgressInternet: "maybe",
		envEgressOpen:     "8.8.8.0/24", // public: nothing to open
	} {
		t.Run(key+"="+v, func(t *testing.T) {
			t.Setenv(key, v)
			if _, err := networkConfigFromEnv(); err == nil {
				t.Errorf("%s=%s accepted", key, v)
			}
		})
	}
	for _, v := range []string{"10.0.0.0/33", "fd00::/8", "nonsense"} {
		t.Setenv(envEgressOpen, v)
		if _, err := networkConfigFromEnv(); err == nil {
			t.Errorf("%s=%s accepted", envEgressOpen, v)
		}
	}
}

func TestUpstreamFromEnv(t *testing.T) {
	t.Setenv(envDNSUpstream, "192.0.2.53, 198.51.100.1:5353")
	got, err := upstreamFromEnv()
	if want := []string{"192.0.2.53:53", "198.51.100.1:5353"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("upstream = %q, %v; want %q", got, err, want)
	}
	t.Setenv(envDNSUpstream, "dns.example")
	if _, err := upstreamFromEnv(); err == nil {
		t.Error("a name accepted as an upstream resolver")
	}
}
