// Package mailpit runs a real Mailpit (https://mailpit.axllent.org, a
// separate process built by scripts/tools.sh) on loopback for tests, as an
// external SMTP relay requiring STARTTLS (RFC 3207) and AUTH (RFC 4954),
// and reads back what it received through its HTTP API. It also issues the
// test PKI Mailpit's certificate comes from.
package mailpit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testsvc"
)

// PKI is a test CA, a server certificate it issued for 127.0.0.1 and
// localhost, and a self-signed certificate nobody trusts.
type PKI struct {
	// Roots holds the CA.
	Roots *x509.CertPool
	// CAPEM is the CA certificate in PEM, e.g. for SSL_CERT_FILE.
	CAPEM []byte
	// Cert is the server's certificate and key.
	Cert tls.Certificate
	// Unknown is a self-signed certificate for the same names.
	Unknown tls.Certificate
}

// NewPKI issues a CA and the certificates, valid for an hour.
func NewPKI(t testing.TB) PKI {
	t.Helper()
	caKey, caCert := issue(t, nil, nil, true)
	key, cert := issue(t, caCert, caKey, false)
	unkKey, unkCert := issue(t, nil, nil, false)
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	return PKI{
		Roots:   roots,
		CAPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}),
		Cert:    tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key},
		Unknown: tls.Certificate{Certificate: [][]byte{unkCert.Raw}, PrivateKey: unkKey},
	}
}

// issue makes a certificate signed by parent (self-signed when nil).
func issue(t testing.TB, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, ca bool) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mailgate test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  ca,
		BasicConstraintsValid: true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

// Server is a running Mailpit.
type Server struct {
	// SMTPPort is its SMTP port on 127.0.0.1.
	SMTPPort int
	// API is the base URL of its HTTP API, http://127.0.0.1:PORT.
	API  string
	http *http.Client
}

// Message is what Mailpit recorded of one received message.
type Message struct {
	ID, Subject string
	// ReturnPath is the envelope sender.
	ReturnPath string
	// To and Cc are the header recipients; Bcc the envelope recipients
	// not in the headers.
	To, Cc, Bcc []string
	// Username is the authenticated user.
	Username string
}

// Binary finds Mailpit: MAILGATE_TEST_MAILPIT, else .tools/bin/mailpit at
// the module root (scripts/tools.sh builds it there). It skips the test
// when there is none (fails it in CI).
func Binary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("MAILGATE_TEST_MAILPIT")
	if bin == "" {
		root, err := moduleRoot()
		if err != nil {
			testsvc.Missing(t, "mailpit", err)
		}
		bin = filepath.Join(root, ".tools", "bin", "mailpit")
	}
	if _, err := os.Stat(bin); err != nil {
		testsvc.Missing(t, "mailpit (bash scripts/tools.sh builds it)", err)
	}
	return bin
}

// moduleRoot is the nearest directory above the working directory holding
// go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Start runs Mailpit on free loopback ports with STARTTLS (certificate
// cert) and AUTH (user, password) required, waits until its API and SMTP
// port answer, and kills it when the test ends.
func Start(t testing.TB, cert tls.Certificate, user, password string) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir, cert)
	authFile := filepath.Join(dir, "smtp-auth")
	// An htpasswd file; Mailpit accepts plain-text passwords in it.
	if err := os.WriteFile(authFile, []byte(user+":"+password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &Server{SMTPPort: freePort(t), http: &http.Client{Timeout: 5 * time.Second}}
	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	s.API = "http://" + httpAddr
	logFile := filepath.Join(dir, "mailpit.log")
	cmd := exec.Command(bin, "--disable-version-check", "--smtp-disable-rdns",
		"--database", filepath.Join(dir, "mailpit.db"), "--log-file", logFile,
		"--listen", httpAddr, "--smtp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.SMTPPort)),
		"--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile, "--smtp-require-starttls",
		"--smtp-auth-file", authFile, "--tags-username")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mailpit: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	s.waitReady(t, exited, logFile)
	return s
}

// writeCert writes cert (leaf and key) as PEM files for Mailpit.
func writeCert(t testing.TB, dir string, cert tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// freePort is a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitReady polls until the HTTP API and the SMTP port answer (at most
// 20 s), failing early with Mailpit's log when the process exits.
func (s *Server) waitReady(t testing.TB, exited <-chan error, logFile string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.ready() == nil {
			return
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logFile)
			t.Fatalf("mailpit exited (%v) before it was ready; its log:\n%s", err, log)
		case <-deadline:
			log, _ := os.ReadFile(logFile)
			t.Fatalf("mailpit not ready after 20s: %v; its log:\n%s", s.ready(), log)
		case <-tick.C:
		}
	}
}

// ready is nil once the API lists messages and the SMTP port accepts.
func (s *Server) ready() error {
	var list messageList
	if err := s.get("/api/v1/messages", &list); err != nil {
		return err
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.SMTPPort)), time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// messageList is the part of GET /api/v1/messages read here.
type messageList struct {
	Messages []struct {
		ID, Subject, Username string
		To, Cc, Bcc           []struct{ Address string }
	}
}

// Messages lists what Mailpit holds (at most 500, newest first), each with
// its envelope sender.
func (s *Server) Messages() ([]Message, error) {
	var list messageList
	if err := s.get("/api/v1/messages?limit=500", &list); err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(list.Messages))
	for _, m := range list.Messages {
		var detail struct{ ReturnPath string }
		if err := s.get("/api/v1/message/"+m.ID, &detail); err != nil {
			return nil, err
		}
		msg := Message{ID: m.ID, Subject: m.Subject, ReturnPath: detail.ReturnPath, Username: m.Username}
		for _, a := range m.To {
			msg.To = append(msg.To, a.Address)
		}
		for _, a := range m.Cc {
			msg.Cc = append(msg.Cc, a.Address)
		}
		for _, a := range m.Bcc {
			msg.Bcc = append(msg.Bcc, a.Address)
		}
		out = append(out, msg)
	}
	return out, nil
}

// Raw is the message as Mailpit received it, headers and body.
func (s *Server) Raw(id string) ([]byte, error) {
	resp, err := s.http.Get(s.API + "/api/v1/message/" + id + "/raw")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET raw %s: %s", id, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// get decodes the JSON answer of GET path on Mailpit's API into v.
func (s *Server) get(path string, v any) error {
	resp, err := s.http.Get(s.API + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
