package mta

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailgate/mailgate/internal/testsvc"
)

// TestMailpitRelay sends through a real external relay: Mailpit (a separate
// process, built by scripts/tools.sh) requiring STARTTLS (RFC 3207) and AUTH
// (RFC 4954), with a certificate for 127.0.0.1 issued by a test CA. What
// arrived is read back from Mailpit's HTTP API.
func TestMailpitRelay(t *testing.T) {
	pki := newTestPKI(t)
	const user, password = "relay-user", "Corr3ct-horse"
	mp := startMailpit(t, pki, user, password)
	envs := []Envelope{
		{From: "b+tok1@bounces.example", To: "ann@example.org"},
		{From: "b+tok2@bounces.example", To: "carol@example.com"}, // a Bcc recipient
	}
	tests := []struct {
		name     string
		tls      string
		password string
		roots    *x509.CertPool
		want     outcome
		wantMail []mailpitDelivery
	}{
		{
			name: "delivered over STARTTLS with AUTH", tls: TLSStartTLS, password: password, roots: pki.roots,
			want: outcome{Code: 250},
			wantMail: []mailpitDelivery{
				{ReturnPath: "b+tok1@bounces.example", To: []string{"ann@example.org"}, Cc: []string{"bob@example.net"}, Username: user},
				{ReturnPath: "b+tok2@bounces.example", To: []string{"ann@example.org"}, Cc: []string{"bob@example.net"}, Bcc: []string{"carol@example.com"}, Username: user},
			},
		},
		{
			name: "wrong password", tls: TLSStartTLS, password: "wrong-Pa55", roots: pki.roots,
			want: outcome{Permanent: true, Config: true, Code: 535, Enhanced: "5.7.8"},
		},
		{
			name: "certificate from an unknown CA", tls: TLSStartTLS, password: password, roots: x509.NewCertPool(),
			want: outcome{Permanent: true, Config: true},
		},
		{
			name: "plaintext refused by the relay", tls: TLSNone, roots: pki.roots,
			want: outcome{Permanent: true, Code: 530, Enhanced: "5.7.0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := RelayConfig{
				Host: "127.0.0.1", Port: mp.smtpPort, TLS: tt.tls,
				TLSConfig: &tls.Config{RootCAs: tt.roots, MinVersion: tls.VersionTLS12},
			}
			if tt.password != "" {
				cfg.Username, cfg.Password = user, tt.password
			}
			p := newTestPool(t, cfg, testTimeouts())
			subject := "mailpit " + tt.name
			for _, e := range envs {
				err := p.Send(t.Context(), e, mailpitMessage(subject))
				if diff := cmp.Diff(tt.want, outcomeOf(t, err)); diff != "" {
					t.Fatalf("send to %s: outcome of %v (-want +got):\n%s", e.To, err, diff)
				}
				if err != nil && tt.password != "" && strings.Contains(err.Error(), tt.password) {
					t.Errorf("error %q contains the password", err)
				}
			}
			if diff := cmp.Diff(tt.wantMail, mp.deliveries(t, subject)); diff != "" {
				t.Errorf("messages at Mailpit (-want +got):\n%s", diff)
			}
		})
	}
}

// mailpitMessage is a message with To and Cc headers; the envelope decides
// who gets it.
func mailpitMessage(subject string) []byte {
	return []byte("From: Shop <orders@shop.example>\r\nTo: Ann <ann@example.org>\r\n" +
		"Cc: bob@example.net\r\nSubject: " + subject + "\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@shop.example>\r\n\r\nHello.\r\n")
}

// mailpit is a running Mailpit process.
type mailpit struct {
	smtpPort int
	api      string // base URL of the HTTP API, http://127.0.0.1:PORT
	http     *http.Client
}

// mailpitDelivery is what Mailpit recorded of one received message: the
// envelope sender, the header recipients, the envelope recipients not in the
// headers (Bcc) and the authenticated user.
type mailpitDelivery struct {
	ReturnPath  string
	To, Cc, Bcc []string
	Username    string
}

// mailpitBinary finds Mailpit: MAILGATE_TEST_MAILPIT, else
// .tools/bin/mailpit at the module root (scripts/tools.sh builds it there).
func mailpitBinary(t *testing.T) string {
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

// startMailpit runs Mailpit on free loopback ports with STARTTLS and AUTH
// (user, password) required, waits until its API and SMTP port answer,
// and kills it when the test ends.
func startMailpit(t *testing.T, pki testPKI, user, password string) *mailpit {
	t.Helper()
	bin := mailpitBinary(t)
	dir := t.TempDir()
	certFile, keyFile := writeServerCert(t, dir, pki.cert)
	authFile := filepath.Join(dir, "smtp-auth")
	// An htpasswd file; Mailpit accepts plain-text passwords in it.
	if err := os.WriteFile(authFile, []byte(user+":"+password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mp := &mailpit{smtpPort: freeLoopbackPort(t), http: &http.Client{Timeout: 5 * time.Second}}
	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeLoopbackPort(t)))
	mp.api = "http://" + httpAddr
	logFile := filepath.Join(dir, "mailpit.log")
	cmd := exec.Command(bin, "--disable-version-check", "--smtp-disable-rdns",
		"--database", filepath.Join(dir, "mailpit.db"), "--log-file", logFile,
		"--listen", httpAddr, "--smtp", net.JoinHostPort("127.0.0.1", strconv.Itoa(mp.smtpPort)),
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
	mp.waitReady(t, exited, logFile)
	return mp
}

// writeServerCert writes cert (leaf and key) as PEM files for Mailpit.
func writeServerCert(t *testing.T, dir string, cert tls.Certificate) (certFile, keyFile string) {
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

// freeLoopbackPort is a loopback TCP port that was free a moment ago.
func freeLoopbackPort(t *testing.T) int {
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
func (mp *mailpit) waitReady(t *testing.T, exited <-chan error, logFile string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if mp.ready() == nil {
			return
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logFile)
			t.Fatalf("mailpit exited (%v) before it was ready; its log:\n%s", err, log)
		case <-deadline:
			log, _ := os.ReadFile(logFile)
			t.Fatalf("mailpit not ready after 20s: %v; its log:\n%s", mp.ready(), log)
		case <-tick.C:
		}
	}
}

// ready is nil once the API lists messages and the SMTP port accepts.
func (mp *mailpit) ready() error {
	var list mailpitList
	if err := mp.get("/api/v1/messages", &list); err != nil {
		return err
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(mp.smtpPort)), time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// mailpitList is the part of GET /api/v1/messages the test reads.
type mailpitList struct {
	Messages []struct {
		ID, Subject, Username string
		To, Cc, Bcc           []struct{ Address string }
	}
}

// deliveries lists the messages Mailpit holds with this subject, ordered
// by envelope sender.
func (mp *mailpit) deliveries(t *testing.T, subject string) []mailpitDelivery {
	t.Helper()
	var list mailpitList
	if err := mp.get("/api/v1/messages?limit=500", &list); err != nil {
		t.Fatal(err)
	}
	var got []mailpitDelivery
	for _, m := range list.Messages {
		if m.Subject != subject {
			continue
		}
		var detail struct{ ReturnPath string }
		if err := mp.get("/api/v1/message/"+m.ID, &detail); err != nil {
			t.Fatal(err)
		}
		d := mailpitDelivery{ReturnPath: detail.ReturnPath, Username: m.Username}
		for _, a := range m.To {
			d.To = append(d.To, a.Address)
		}
		for _, a := range m.Cc {
			d.Cc = append(d.Cc, a.Address)
		}
		for _, a := range m.Bcc {
			d.Bcc = append(d.Bcc, a.Address)
		}
		got = append(got, d)
	}
	slices.SortFunc(got, func(a, b mailpitDelivery) int { return strings.Compare(a.ReturnPath, b.ReturnPath) })
	return got
}

// get decodes the JSON answer of GET path on Mailpit's API into v.
func (mp *mailpit) get(path string, v any) error {
	resp, err := mp.http.Get(mp.api + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
