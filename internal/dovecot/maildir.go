package dovecot

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Deliver puts a raw message into the user's INBOX, the way an MTA's local
// delivery does: written into Maildir/tmp, then renamed into Maildir/new.
func (s *Server) Deliver(t testing.TB, raw []byte) {
	t.Helper()
	s.DeliverTo(t, "INBOX", raw)
}

// DeliverTo puts a raw message into folder ("INBOX" or a folder name, which
// is created when missing).
func (s *Server) DeliverTo(t testing.TB, folder string, raw []byte) {
	t.Helper()
	if err := s.deliver(folder, raw); err != nil {
		t.Fatalf("dovecot: deliver to %s: %v", folder, err)
	}
}

// deliver writes one message file with a unique Maildir name.
func (s *Server) deliver(folder string, raw []byte) error {
	dir := s.folderDir(folder)
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
		if err := s.chown(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	now := time.Now()
	name := fmt.Sprintf("%d.M%dP%dQ%d.mailgate-test", now.Unix(), now.Nanosecond()/1000, os.Getpid(), s.seq.Add(1))
	tmp := filepath.Join(dir, "tmp", name)
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := s.chown(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
		return fmt.Errorf("rename into new: %w", err)
	}
	return nil
}

// chown gives a path to the mail user when the tests run as root.
func (s *Server) chown(path string) error {
	if s.uid < 0 {
		return nil
	}
	if err := os.Lchown(path, s.uid, s.gid); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}

// Count returns how many messages folder holds on disk (new and cur,
// including messages flagged \Deleted but not yet expunged); a folder that
// does not exist holds 0.
func (s *Server) Count(t testing.TB, folder string) int {
	t.Helper()
	n := 0
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(s.folderDir(folder), sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatalf("dovecot: count %s: %v", folder, err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() {
				n++
			}
		}
	}
	return n
}

// folderDir maps a folder name to its Maildir++ directory.
func (s *Server) folderDir(folder string) string {
	if folder == "" || folder == "INBOX" {
		return s.MaildirPath
	}
	return filepath.Join(s.MaildirPath, "."+folder)
}

// URL returns a MAILGATE_MAILBOXES entry for this server: scheme is imap,
// imaps, pop3 or pop3s (choosing the matching port), path is appended as is
// ("/INBOX" or ""), query without "?" ("" for none).
func (s *Server) URL(scheme, path, query string) string {
	ports := map[string]int{"imap": s.IMAPPort, "imaps": s.IMAPSPort, "pop3": s.POP3Port, "pop3s": s.POP3SPort}
	u := url.URL{
		Scheme:   scheme,
		User:     url.UserPassword(s.User, s.Password),
		Host:     net.JoinHostPort(s.Host, strconv.Itoa(ports[scheme])),
		Path:     path,
		RawQuery: query,
	}
	return u.String()
}
