package fleet

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"time"

	"github.com/wrennhq/wrenn"
)

// The fleet's certificate authority (issue 13): the control plane keeps
// it, in the store, so that every control plane on one database shares
// it. It certifies two kinds of identity, each a URI SAN in the SPIFFE
// style: a host's agent (spiffe://wrenn/host/<host ID>) and the control
// plane (spiffe://wrenn/control-plane). Names and IP addresses are not
// certified: peers on the agent link check these identities, not
// hostnames.

const (
	// ControlPlaneURI is the control plane's identity.
	ControlPlaneURI = "spiffe://wrenn/control-plane"
	hostURIPrefix   = "spiffe://wrenn/host/"
	caLifetime      = 10 * 365 * 24 * time.Hour
	// clockSkew is how far before issue a certificate is already valid,
	// for peers whose clocks run a little behind.
	clockSkew = 5 * time.Minute
)

// HostURI is the identity of host id's agent.
func HostURI(id string) string { return hostURIPrefix + id }

// CA is the fleet's certificate authority.
type CA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	pool    *x509.CertPool
}

// CAStore keeps the CA.
type CAStore interface {
	// InitFleetCA stores the CA unless one is stored, and returns the
	// stored one.
	InitFleetCA(ctx context.Context, certPEM, keyPEM string, at time.Time) (string, string, error)
}

// LoadCA returns the stored CA, making and storing one first if there is
// none.
func LoadCA(ctx context.Context, st CAStore, now time.Time) (*CA, error) {
	certPEM, keyPEM, err := NewCAPEM(now)
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err = st.InitFleetCA(ctx, certPEM, keyPEM, now)
	if err != nil {
		return nil, err
	}
	return ParseCA([]byte(certPEM), []byte(keyPEM))
}

// NewCAPEM makes a CA: an ECDSA P-256 key and a self-signed certificate
// valid ten years from now, both PEM.
func NewCAPEM(now time.Time) (certPEM, keyPEM string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: "Wrenn fleet CA"},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return "", "", err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})), nil
}

// ParseCA reads a CA's certificate and key.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("fleet CA certificate: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("fleet CA key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("fleet CA key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("fleet CA key cannot sign")
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{cert: cert, key: signer, certPEM: certPEM, pool: pool}, nil
}

// ParseCertPEM reads the first certificate of PEM data.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

// CertPEM is the CA's certificate, PEM.
func (ca *CA) CertPEM() []byte { return ca.certPEM }

// Pool is a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool { return ca.pool }

// Fingerprint is the SHA-256 of the CA's certificate, hex: what an agent
// may pin when it joins (wrenn agent --ca-sha256).
func (ca *CA) Fingerprint() string { return Fingerprint(ca.cert) }

// Fingerprint is the SHA-256 of a certificate, hex.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

func newSerial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b)
	b[0] &= 0x7f // positive
	return new(big.Int).SetBytes(b)
}

// SerialHex is how a certificate's serial is recorded.
func SerialHex(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

// issue signs a certificate for pub with identity uri, valid from now
// until notAfter, for both ends of a TLS connection.
func (ca *CA) issue(pub crypto.PublicKey, cn, uri string, now, notAfter time.Time) (*x509.Certificate, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, err
	}
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// SignHostCSR certifies the key of a CSR (PEM) as host id's agent until
// notAfter. Only the CSR's key is used: what it asks to be named is
// ignored, the identity is the host's.
func (ca *CA) SignHostCSR(csrPEM []byte, hostID string, now, notAfter time.Time) (*x509.Certificate, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, wrenn.Errorf(wrenn.EInvalid, "csr must be a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, wrenn.Errorf(wrenn.EInvalid, "csr: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, wrenn.Errorf(wrenn.EInvalid, "csr is not signed by its key: %v", err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, wrenn.Errorf(wrenn.EInvalid, "csr key must be ECDSA P-256 or P-384, or Ed25519")
		}
	default:
		if csr.PublicKeyAlgorithm != x509.Ed25519 {
			return nil, wrenn.Errorf(wrenn.EInvalid, "csr key must be ECDSA P-256 or P-384, or Ed25519")
		}
	}
	return ca.issue(csr.PublicKey, hostID, HostURI(hostID), now, notAfter)
}

// ControlPlaneCert makes a fresh key and a certificate of the control
// plane for it, valid until notAfter. The key never leaves the process.
func (ca *CA) ControlPlaneCert(now, notAfter time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	c, err := ca.issue(key.Public(), "wrenn control plane", ControlPlaneURI, now, notAfter)
	if err != nil {
		return nil, err
	}
	// The chain carries the CA, so that a joining agent can check a pinned
	// fingerprint against it.
	return &tls.Certificate{Certificate: [][]byte{c.Raw, ca.cert.Raw}, PrivateKey: key, Leaf: c}, nil
}

// NewKeyCSR makes an ECDSA P-256 key and a CSR for it (PEM each): what an
// agent sends to be certified, keeping the key.
func NewKeyCSR() (keyPEM, csrPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "wrenn agent"}}, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// VerifyPeer checks a peer's certificates (leaf first) against roots at
// now, for usage, and returns the leaf and its identity (its one URI SAN).
func VerifyPeer(certs []*x509.Certificate, roots *x509.CertPool, now time.Time, usage x509.ExtKeyUsage) (*x509.Certificate, string, error) {
	if len(certs) == 0 {
		return nil, "", errors.New("no certificate")
	}
	leaf := certs[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return nil, "", err
	}
	if len(leaf.URIs) != 1 || !strings.HasPrefix(leaf.URIs[0].String(), "spiffe://wrenn/") {
		return nil, "", errors.New("certificate has no wrenn identity")
	}
	return leaf, leaf.URIs[0].String(), nil
}

// HostOfURI returns the host ID of a host identity, or "".
func HostOfURI(uri string) string {
	id, ok := strings.CutPrefix(uri, hostURIPrefix)
	if !ok || !wrenn.ValidID(wrenn.PrefixHost, id) {
		return ""
	}
	return id
}
