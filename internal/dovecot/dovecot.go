// Package dovecot starts a private, real Dovecot (Debian dovecot-imapd and
// dovecot-pop3d) on 127.0.0.1 for tests: IMAP with STARTTLS, IMAPS, POP3
// with STLS and POP3S on free ports, one passwd-file user with a Maildir in a
// temporary directory and a test CA generated at start. It owns only the
// test server's lifecycle and its mail store on disk; it is never used by
// production code.
package dovecot

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testsvc"
)

// Server is a running private Dovecot. Its exported fields are what a test
// needs to connect; they do not change after Start.
type Server struct {
	// Host is the address every listener binds: always 127.0.0.1.
	Host string
	// IMAPPort is IMAP with STARTTLS (RFC 3501 §6.2.1); plaintext LOGIN is
	// refused before TLS (disable_plaintext_auth = yes).
	IMAPPort int
	// IMAPSPort is IMAP over implicit TLS (RFC 8314 §3.2).
	IMAPSPort int
	// POP3Port is POP3 with STLS (RFC 2595 §4); USER/PASS is refused before TLS.
	POP3Port int
	// POP3SPort is POP3 over implicit TLS (RFC 8314 §3.2).
	POP3SPort int
	// User and Password log in to the single mailbox.
	User, Password string
	// RootCAs trusts the server certificate (put it in tls.Config.RootCAs).
	RootCAs *x509.CertPool
	// MaildirPath is the user's Maildir (INBOX; other folders are
	// ".Name" subdirectories, Maildir++).
	MaildirPath string

	dir      string
	logPath  string
	uid, gid int // owner of delivered files; -1 keeps the current user
	ids      identity
	seq      atomic.Uint64
}

// Start runs Dovecot for the test and stops it, removing its files, when
// the test ends. A missing dovecot binary skips the test (fails it in CI,
// see testsvc.Missing). On test failure the tail of Dovecot's log is printed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := findBinary()
	if err != nil {
		testsvc.Missing(t, "dovecot", err)
		return nil
	}
	s, err := newServer(t)
	if err != nil {
		t.Fatalf("dovecot: %v", err)
	}
	for attempt := 1; ; attempt++ {
		err = s.run(t, bin)
		if err == nil {
			return s
		}
		// A free port may be taken between choosing it and Dovecot binding it.
		if attempt == 3 {
			t.Fatalf("dovecot: start: %v\n%s", err, s.logTail())
		}
	}
}

// findBinary locates the dovecot master binary (Debian: /usr/sbin/dovecot).
func findBinary() (string, error) {
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p, nil
	}
	const debian = "/usr/sbin/dovecot"
	if _, err := os.Stat(debian); err != nil {
		return "", fmt.Errorf("dovecot binary not found (apt-get install dovecot-imapd dovecot-pop3d): %w", err)
	}
	return debian, nil
}

// newServer creates the directory tree, the PKI and the passwd file. The
// tree lives in its own 0755 temporary directory rather than t.TempDir(),
// whose 0700 parents the unprivileged mail user could not traverse when the
// tests run as root.
func newServer(t testing.TB) (*Server, error) {
	dir, err := os.MkdirTemp("", "mailgate-dovecot-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chmod temp dir: %w", err)
	}
	s := &Server{
		Host:        "127.0.0.1",
		User:        "mailgate",
		Password:    randomHex(12),
		MaildirPath: filepath.Join(dir, "home", "Maildir"),
		dir:         dir,
		logPath:     filepath.Join(dir, "dovecot.log"),
		uid:         -1,
		gid:         -1,
	}
	if err := s.prepare(time.Now()); err != nil {
		return nil, err
	}
	return s, nil
}

// prepare writes certificates and the passwd file and creates the Maildir.
func (s *Server) prepare(now time.Time) error {
	pki, err := newTestPKI(now)
	if err != nil {
		return err
	}
	s.RootCAs = pki.pool
	files := map[string][]byte{"cert.pem": pki.certPEM, "key.pem": pki.keyPEM}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name), data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	for _, sub := range []string{"base", "state", "home/Maildir/new", "home/Maildir/cur", "home/Maildir/tmp"} {
		if err := os.MkdirAll(filepath.Join(s.dir, sub), 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", sub, err)
		}
	}
	ids, err := currentIdentity()
	if err != nil {
		return err
	}
	if ids.root {
		s.uid, s.gid = ids.uid, ids.gid
		if err := chownTree(filepath.Join(s.dir, "home"), ids.uid, ids.gid); err != nil {
			return err
		}
	}
	line := fmt.Sprintf("%s:{PLAIN}%s:%d:%d::%s::\n", s.User, s.Password, ids.uid, ids.gid, filepath.Join(s.dir, "home"))
	if err := os.WriteFile(filepath.Join(s.dir, "passwd"), []byte(line), 0o644); err != nil {
		return fmt.Errorf("write passwd: %w", err)
	}
	s.ids = ids
	return nil
}

// identity is who Dovecot's processes run as.
type identity struct {
	root     bool
	uid, gid int    // the mail user's ids
	name     string // login and internal user when not root
}

// currentIdentity picks the mail user: as root, Dovecot refuses mail access
// for uid 0, so mail processes run as the Debian package's 'dovecot' user;
// otherwise everything runs as the current user.
func currentIdentity() (identity, error) {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("dovecot")
		if err != nil {
			return identity{}, fmt.Errorf("lookup system user dovecot (created by the Debian package): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return identity{root: true, uid: uid, gid: gid}, nil
	}
	u, err := user.Current()
	if err != nil {
		return identity{}, fmt.Errorf("current user: %w", err)
	}
	return identity{uid: os.Geteuid(), gid: os.Getegid(), name: u.Username}, nil
}

// chownTree hands a directory tree to the mail user.
func chownTree(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// randomHex returns n random bytes as hex (crypto/rand never fails on Linux).
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// logTail returns the last 4 KiB of Dovecot's log and its stderr.
func (s *Server) logTail() string {
	var out bytes.Buffer
	for _, name := range []string{s.logPath, filepath.Join(s.dir, "stderr.log")} {
		data, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		if len(data) > 4096 {
			data = data[len(data)-4096:]
		}
		fmt.Fprintf(&out, "--- %s ---\n%s\n", filepath.Base(name), data)
	}
	return out.String()
}

// errExited reports that Dovecot stopped before it was ready.
var errExited = errors.New("dovecot exited before it was ready")
