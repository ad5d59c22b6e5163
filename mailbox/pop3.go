package mailbox

// A POP3 client written by hand on net/textproto and bufio: no Go POP3
// client is served by the module proxy here (see LIBRARIES.md). It speaks
// RFC 1939 (USER/PASS, UIDL, LIST, RETR, DELE, QUIT), RFC 2449 (CAPA) and
// RFC 2595 §4 (STLS), and bounds every read: status and listing lines by
// maxStatusLine, listings by maxListLines, message data by the caller's
// limit (the rest of a long message is read and discarded so the session
// stays in sync).

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"
)

const (
	// maxStatusLine bounds a status or listing line. RFC 2449 §4 allows 512
	// octets for a response line; servers' UIDLs and CAPA lines are shorter.
	maxStatusLine = 4096
	// maxListLines bounds a CAPA, UIDL or LIST listing.
	maxListLines = 1_000_000
	// readBuffer is the bufio size; message lines longer than it are read
	// in pieces, never held whole.
	readBuffer = 64 << 10
)

// POP3 errors.
var (
	// ErrNoTLS: tls=starttls but the server does not offer STLS (RFC 2595
	// §4) or IMAP STARTTLS; the password was not sent.
	ErrNoTLS = errors.New("server does not offer tls; refusing to send the password in plaintext")
	// ErrNoUIDL: the POP3 server does not implement UIDL (RFC 1939 §7),
	// without which messages have no stable id.
	ErrNoUIDL = errors.New("pop3 server does not support uidl")
	// errLineTooLong: a status or listing line exceeded maxStatusLine.
	errLineTooLong = errors.New("pop3 response line too long")
	// errMalformed: a response is neither +OK nor -ERR, or a listing line
	// does not parse.
	errMalformed = errors.New("malformed pop3 response")
)

// pop3Error is a -ERR answer (RFC 1939 §3). It names the command only,
// never its arguments, so a PASS error cannot carry the password.
type pop3Error struct {
	Command string
	Text    string
}

func (e *pop3Error) Error() string {
	return fmt.Sprintf("pop3 %s: -ERR %s", e.Command, e.Text)
}

// pop3Conn is one POP3 session.
type pop3Conn struct {
	conn    net.Conn
	r       *bufio.Reader
	w       *textproto.Writer
	timeout time.Duration // idle limit per read and write; 0 none
}

// newPOP3Conn wraps conn (plain or TLS).
func newPOP3Conn(conn net.Conn, timeout time.Duration) *pop3Conn {
	return &pop3Conn{
		conn:    conn,
		r:       bufio.NewReaderSize(conn, readBuffer),
		w:       textproto.NewWriter(bufio.NewWriter(conn)),
		timeout: timeout,
	}
}

// deadline pushes the connection deadline forward by the idle timeout.
func (p *pop3Conn) deadline() {
	if p.timeout > 0 && p.conn != nil {
		_ = p.conn.SetDeadline(time.Now().Add(p.timeout))
	}
}

// readLine returns one line without its CRLF (or bare LF), at most max bytes.
func (p *pop3Conn) readLine(max int) (string, error) {
	p.deadline()
	var line []byte
	for {
		frag, err := p.r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > max+2 {
			return "", errLineTooLong
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	return string(line), nil
}

// parseStatus splits a status line (RFC 1939 §3): "+OK [text]" or
// "-ERR [text]".
func parseStatus(line string) (ok bool, text string, err error) {
	word, text, _ := strings.Cut(line, " ")
	switch word {
	case "+OK":
		return true, text, nil
	case "-ERR":
		return false, text, nil
	}
	return false, "", fmt.Errorf("%w: status %q", errMalformed, truncate(line, 64))
}

// truncate shortens s for error messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// readStatus reads a status line; -ERR becomes a *pop3Error for command.
func (p *pop3Conn) readStatus(command string) (string, error) {
	line, err := p.readLine(maxStatusLine)
	if err != nil {
		return "", fmt.Errorf("pop3 %s: %w", command, err)
	}
	ok, text, err := parseStatus(line)
	if err != nil {
		return "", fmt.Errorf("pop3 %s: %w", command, err)
	}
	if !ok {
		return "", &pop3Error{Command: command, Text: text}
	}
	return text, nil
}

// cmd sends one command line and reads its status. name labels errors;
// line is never included in them.
func (p *pop3Conn) cmd(name, line string) (string, error) {
	p.deadline()
	if err := p.w.PrintfLine("%s", line); err != nil {
		return "", fmt.Errorf("pop3 %s: %w", name, err)
	}
	return p.readStatus(name)
}

// readList reads a multi-line body of short lines up to the terminating
// "." (RFC 1939 §3), dot-unstuffed.
func (p *pop3Conn) readList(name string) ([]string, error) {
	var lines []string
	for {
		line, err := p.readLine(maxStatusLine)
		if err != nil {
			return nil, fmt.Errorf("pop3 %s: %w", name, err)
		}
		if line == "." {
			return lines, nil
		}
		if len(lines) == maxListLines {
			return nil, fmt.Errorf("pop3 %s: more than %d lines", name, maxListLines)
		}
		lines = append(lines, strings.TrimPrefix(line, "."))
	}
}

// multi sends a command answered by a multi-line response.
func (p *pop3Conn) multi(name, line string) ([]string, error) {
	if _, err := p.cmd(name, line); err != nil {
		return nil, err
	}
	return p.readList(name)
}
