package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"
)

// The fake outside world of the egress tests: a network namespace the test
// makes, joined to the host by a veth, holding every address below. The
// host routes the "public" TEST-NET-2 block and a "private" 10.99/16 into
// it, so no test packet leaves the machine.
const (
	worldNS       = "wrenntest-world"
	worldLink     = "wtworld0" // the host's end; not "wrn*", so not a slot
	worldHostAddr = "203.0.113.1"
	worldAddr     = "203.0.113.2"
	publicAddr    = "198.51.100.10" // public.test: HTTP and TLS
	otherAddr     = "198.51.100.11" // other.test
	deniedAddr    = "198.51.100.12" // denied.test
	worldDNS      = "198.51.100.53"
	internalAddr  = "10.99.0.10" // internal.test: the operator's private network
)

var worldNames = map[string]string{
	"public.test.":   publicAddr,
	"other.test.":    otherAddr,
	"denied.test.":   deniedAddr,
	"internal.test.": internalAddr,
}

// startWorld builds the fake world and serves it until the test ends: on
// every address HTTP on 80, HTTPS on 443 and a UDP echo on 7, all saying
// which address they are; DNS at worldDNS.
func startWorld(t *testing.T) {
	t.Helper()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	_ = exec.Command("ip", "netns", "del", worldNS).Run() // an earlier run's, killed
	_ = exec.Command("ip", "link", "del", worldLink).Run()
	t.Cleanup(func() {
		_ = exec.Command("ip", "route", "del", "198.51.100.0/24").Run()
		_ = exec.Command("ip", "route", "del", "10.99.0.0/16").Run()
		_ = exec.Command("ip", "link", "del", worldLink).Run()
		_ = exec.Command("ip", "netns", "del", worldNS).Run()
	})
	run("ip", "netns", "add", worldNS)
	run("ip", "link", "add", worldLink, "type", "veth", "peer", "name", "eth0", "netns", worldNS)
	run("ip", "addr", "add", worldHostAddr+"/30", "dev", worldLink)
	run("ip", "link", "set", worldLink, "up")
	in := func(args ...string) { run(append([]string{"ip", "-n", worldNS}, args...)...) }
	in("link", "set", "lo", "up")
	in("addr", "add", worldAddr+"/30", "dev", "eth0")
	in("link", "set", "eth0", "up")
	for _, a := range []string{publicAddr, otherAddr, deniedAddr, worldDNS, internalAddr} {
		in("addr", "add", a+"/32", "dev", "lo")
	}
	in("route", "add", "default", "via", worldHostAddr)
	run("ip", "route", "add", "198.51.100.0/24", "via", worldAddr)
	run("ip", "route", "add", "10.99.0.0/16", "via", worldAddr)

	var closers []func()
	t.Cleanup(func() {
		for _, c := range closers {
			c()
		}
	})
	inWorld(t, func() {
		web := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "world %s\n", strings.Split(r.Host, ":")[0])
		})
		for _, port := range []string{"80", "443"} {
			l, err := net.Listen("tcp4", "0.0.0.0:"+port)
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: web, ReadHeaderTimeout: 5 * time.Second}
			if port == "443" {
				srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
				go srv.ServeTLS(l, "", "")
			} else {
				go srv.Serve(l)
			}
			closers = append(closers, func() { srv.Close() })
		}
		for _, a := range []string{publicAddr, otherAddr, deniedAddr, internalAddr} {
			pc, err := net.ListenPacket("udp4", a+":7")
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				buf := make([]byte, 512)
				for {
					n, from, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					pc.WriteTo(append([]byte("echo "), buf[:n]...), from)
				}
			}()
			closers = append(closers, func() { pc.Close() })
		}
		h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(req)
			q := req.Question[0]
			a, ok := worldNames[strings.ToLower(q.Name)]
			switch {
			case !ok:
				m.Rcode = dns.RcodeNameError
			case q.Qtype == dns.TypeA:
				m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(a)}}
			}
			_ = w.WriteMsg(m)
		})
		pc, err := net.ListenPacket("udp4", worldDNS+":53")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp4", worldDNS+":53")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
			go s.ActivateAndServe()
		}
		closers = append(closers, func() { pc.Close(); l.Close() })
	})
	// The control: the host itself reaches the world, public and private.
	for _, a := range []string{publicAddr, internalAddr} {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + a + "/")
		if err != nil {
			t.Fatalf("host → world %s: %v", a, err)
		}
		resp.Body.Close()
	}
}

// inWorld runs fn on a thread inside the world's namespace: sockets it
// opens live there.
func inWorld(t *testing.T, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		home, err := netns.Get()
		if err != nil {
			t.Error(err)
			return
		}
		defer home.Close()
		world, err := netns.GetFromName(worldNS)
		if err != nil {
			t.Error(err)
			return
		}
		defer world.Close()
		if err := netns.Set(world); err != nil {
			t.Error(err)
			return
		}
		fn()
		if err := netns.Set(home); err != nil {
			t.Error(err) // still locked: the runtime ends this thread
			return
		}
		runtime.UnlockOSThread()
	}()
	<-done
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "public.test"},
		DNSNames:  []string{"public.test", "other.test", "denied.test", "internal.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// probeScript runs checks in order inside a guest and prints a JSON object
// of their results: "ok", an address (dns), a page's first line (http),
// or "fail".
const probeScript = `import json, socket, ssl, struct, sys, time, urllib.request
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b)//2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
def tcp(h, p):
    s = socket.socket(); s.settimeout(2)
    return s.connect_ex((h, int(p))) == 0
def udp(h, p):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    s.sendto(b'hi', (h, int(p)))
    try: return s.recv(64) == b'echo hi'
    except OSError: return False
def icmp(h):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(2)
    p = bytearray(b'\x08\x00\x00\x00\x12\x34\x00\x01wrenn!'); struct.pack_into('!H', p, 2, csum(bytes(p)))
    s.sendto(p, (h, 0)); end = time.time() + 2
    while time.time() < end:
        try: d, a = s.recvfrom(1500)
        except OSError: return False
        if a[0] == h and d[20] == 0: return True
    return False
def http(url):
    ctx = ssl._create_unverified_context()
    return urllib.request.urlopen(url, timeout=3, context=ctx).read().decode().strip()
out = {}
for c in sys.argv[1:]:
    kind, _, arg = c.partition(':')
    try:
        if kind == 'dns': r = socket.gethostbyname(arg)
        elif kind == 'http': r = http(arg)
        elif kind == 'tcp': r = 'ok' if tcp(*arg.rsplit(':', 1)) else 'fail'
        elif kind == 'udp': r = 'ok' if udp(*arg.rsplit(':', 1)) else 'fail'
        elif kind == 'icmp': r = 'ok' if icmp(arg) else 'fail'
    except Exception: r = 'fail'
    out[c] = r
print(json.dumps(out))`

// probe is one check of probeScript and the result it wants.
type probe struct{ check, want string }

func (s *server) probe(t *testing.T, key hdr, id, what string, probes []probe) {
	t.Helper()
	args := []string{"-c", probeScript}
	for _, p := range probes {
		args = append(args, p.check)
	}
	var res execResult
	s.must(200, "POST", "/v1/sandboxes/"+id+"/exec", key, map[string]any{"cmd": "python3", "args": args, "timeout_sec": 120}, &res)
	var got map[string]string
	if err := json.Unmarshal([]byte(res.Stdout), &got); err != nil {
		t.Fatalf("%s: probe output %q (stderr %q): %v", what, res.Stdout, res.Stderr, err)
	}
	for _, p := range probes {
		if got[p.check] != p.want {
			t.Errorf("%s: %s = %q, want %q", what, p.check, got[p.check], p.want)
		}
	}
}

type sandboxNetwork struct {
	ID                  string `json:"id"`
	HostIP              string `json:"host_ip"`
	AllowInternetAccess bool   `json:"allow_internet_access"`
	Network             struct {
		AllowOut []string `json:"allow_out"`
		DenyOut  []string `json:"deny_out"`
	} `json:"network"`
}

// TestEgress drives real VMs under each kind of egress policy against the
// fake world: by default the public world yes, the private network, the
// host and other sandboxes no, names resolve; no internet blocks all; CIDR
// and domain allow and deny lists behave, a domain rule is not bypassed by
// connecting to its address; the policy holds across pause and resume.
func TestEgress(t *testing.T) {
	requireVMs(t)
	startWorld(t)
	dataDir := shortTempDir(t)
	s := startVMServer(t, dataDir, "WRENN_DNS_UPSTREAM="+worldDNS)
	key := s.account("egress@example.com")

	create := func(body map[string]any) sandboxNetwork {
		t.Helper()
		var sb sandboxNetwork
		s.must(201, "POST", "/v1/sandboxes", key, body, &sb)
		t.Cleanup(func() { s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil) })
		return sb
	}
	pub := "http://public.test/"
	publicPage := "world public.test"

	t.Run("default", func(t *testing.T) {
		a := create(map[string]any{})
		b := create(map[string]any{})
		if !a.AllowInternetAccess || len(a.Network.AllowOut)+len(a.Network.DenyOut) != 0 {
			t.Errorf("default policy reported as %+v", a)
		}
		s.exec(key, b.ID, "sh", "-c", "nohup python3 -m http.server 8000 >/dev/null 2>&1 & sleep 1")
		probes := []probe{
			{"dns:public.test", publicAddr},
			{"dns:internal.test", internalAddr}, // names resolve; the address is what is dropped
			{"http:" + pub, publicPage},
			{"http:https://public.test/", publicPage},
			{"udp:" + publicAddr + ":7", "ok"},
			{"icmp:" + publicAddr, "ok"},
			{"tcp:" + internalAddr + ":80", "fail"},
			{"udp:" + internalAddr + ":7", "fail"},
			{"icmp:" + internalAddr, "fail"},
			{"tcp:" + worldHostAddr + ":80", "fail"},
			{"tcp:" + b.HostIP + ":8000", "fail"}, // the other sandbox
			{"icmp:" + b.HostIP, "fail"},
		}
		for _, ip := range hostIPv4s(t) {
			if strings.HasPrefix(ip, "127.") {
				continue // the guest's own loopback, from inside
			}
			port := strings.Split(strings.TrimPrefix(s.url, "http://"), ":")[1]
			probes = append(probes, probe{"tcp:" + ip + ":" + port, "fail"}, probe{"icmp:" + ip, "fail"})
		}
		s.probe(t, key, a.ID, "default policy", probes)
		// The control for "the other sandbox": the host reaches it.
		eventually(t, 20*time.Second, func() string {
			resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + b.HostIP + ":8000/")
			if err != nil {
				return err.Error()
			}
			resp.Body.Close()
			return ""
		})
	})

	t.Run("no internet", func(t *testing.T) {
		sb := create(map[string]any{"allow_internet_access": false})
		if sb.AllowInternetAccess {
			t.Errorf("reported %+v", sb)
		}
		s.probe(t, key, sb.ID, "no internet", []probe{
			{"dns:public.test", "fail"},
			{"tcp:" + publicAddr + ":80", "fail"},
			{"udp:" + publicAddr + ":7", "fail"},
			{"icmp:" + publicAddr, "fail"},
			{"tcp:" + internalAddr + ":80", "fail"},
		})
	})

	t.Run("CIDR lists", func(t *testing.T) {
		allow := create(map[string]any{"allow_internet_access": false, "network": map[string]any{"allow_out": []string{otherAddr + "/32"}}})
		s.probe(t, key, allow.ID, "allow a CIDR", []probe{
			{"tcp:" + otherAddr + ":80", "ok"},
			{"tcp:" + publicAddr + ":80", "fail"},
		})
		deny := create(map[string]any{"network": map[string]any{"deny_out": []string{otherAddr}}})
		s.probe(t, key, deny.ID, "deny a CIDR", []probe{
			{"tcp:" + otherAddr + ":80", "fail"},
			{"tcp:" + publicAddr + ":80", "ok"},
		})
	})

	t.Run("domain lists", func(t *testing.T) {
		allow := create(map[string]any{"allow_internet_access": false, "network": map[string]any{"allow_out": []string{"public.test"}}})
		if got := allow.Network.AllowOut; len(got) != 1 || got[0] != "public.test" {
			t.Errorf("allow_out reported as %q", got)
		}
		s.probe(t, key, allow.ID, "allow a domain", []probe{
			{"tcp:" + publicAddr + ":80", "fail"}, // the address, before the name was asked
			{"tcp:" + otherAddr + ":80", "fail"},
			{"dns:other.test", "fail"},
			{"http:" + pub, publicPage},
			{"http:https://public.test/", publicPage},
		})
		deny := create(map[string]any{"network": map[string]any{"deny_out": []string{"denied.test"}}})
		s.probe(t, key, deny.ID, "deny a domain", []probe{
			{"tcp:" + deniedAddr + ":80", "fail"}, // never resolved by the guest: not bypassed
			{"dns:denied.test", "fail"},
			{"http:http://denied.test/", "fail"},
			{"http:" + pub, publicPage},
		})
	})

	t.Run("holds across pause and resume", func(t *testing.T) {
		sb := create(map[string]any{"allow_internet_access": false, "network": map[string]any{"allow_out": []string{"public.test", otherAddr}}})
		s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/pause", key, nil, nil)
		var got sandboxNetwork
		s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/resume", key, nil, &got)
		if got.AllowInternetAccess || len(got.Network.AllowOut) != 2 {
			t.Errorf("resumed sandbox reports %+v", got)
		}
		s.probe(t, key, sb.ID, "after resume", []probe{
			{"tcp:" + deniedAddr + ":80", "fail"},
			{"tcp:" + internalAddr + ":80", "fail"},
			{"tcp:" + otherAddr + ":80", "ok"},
			{"http:" + pub, publicPage},
			{"dns:denied.test", "fail"},
		})
	})

	t.Run("bad policies are refused", func(t *testing.T) {
		for _, body := range []map[string]any{
			{"network": map[string]any{"allow_out": []string{"10.99.0.0/16"}}},    // private, not opened
			{"network": map[string]any{"allow_out": []string{"169.254.169.254"}}}, // metadata
			{"network": map[string]any{"deny_out": []string{"not a rule"}}},
			{"network": map[string]any{"deny_out": []string{"2001:db8::/32"}}},
			{"network": map[string]any{"allow_out": "public.test"}},
			{"allow_internet_access": "yes"},
		} {
			code, resp := s.do("POST", "/v1/sandboxes", key, body)
			if code != 400 || errorCode(t, resp) != "invalid_request" {
				t.Errorf("create with %v: %d %s, want 400", body, code, resp)
			}
		}
	})
}
