package dovecot

import (
	"bufio"
	"crypto/tls"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestStart checks the server comes up on all four ports, speaks TLS with
// the generated CA on the implicit-TLS ports, and that delivered messages
// are counted.
func TestStart(t *testing.T) {
	s := Start(t)
	for _, port := range []int{s.IMAPSPort, s.POP3SPort} {
		conn, err := tls.Dial("tcp", net.JoinHostPort(s.Host, strconv.Itoa(port)), &tls.Config{RootCAs: s.RootCAs, ServerName: s.Host})
		if err != nil {
			t.Fatalf("tls dial %d: %v", port, err)
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		_ = conn.Close()
		if err != nil {
			t.Fatalf("greeting on %d: %v", port, err)
		}
		if !strings.HasPrefix(line, "* OK") && !strings.HasPrefix(line, "+OK") {
			t.Errorf("greeting on %d = %q", port, line)
		}
	}
	if got := s.Count(t, "INBOX"); got != 0 {
		t.Errorf("Count(INBOX) before delivery = %d, want 0", got)
	}
	s.Deliver(t, []byte("Subject: a\r\n\r\nx\r\n"))
	s.DeliverTo(t, "Archive", []byte("Subject: b\r\n\r\ny\r\n"))
	if got := s.Count(t, "INBOX"); got != 1 {
		t.Errorf("Count(INBOX) = %d, want 1", got)
	}
	if got := s.Count(t, "Archive"); got != 1 {
		t.Errorf("Count(Archive) = %d, want 1", got)
	}
}

// TestConfigValid checks the generated configuration with doveconf -n.
func TestConfigValid(t *testing.T) {
	s := Start(t)
	bin, err := exec.LookPath("doveconf")
	if err != nil {
		t.Skipf("doveconf not installed: %v", err)
	}
	out, err := exec.Command(bin, "-c", filepath.Join(s.dir, "dovecot.conf"), "-n").CombinedOutput()
	if err != nil {
		t.Fatalf("doveconf -n: %v\n%s", err, out)
	}
	for _, want := range []string{"listen = 127.0.0.1", "auth_failure_delay = 0", "ssl = yes"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("doveconf output lacks %q", want)
		}
	}
}
