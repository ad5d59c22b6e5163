package mailbox

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzPOP3Response feeds arbitrary server output to the POP3 response
// readers and parsers: they must return an error or a bounded result,
// never panic or exceed their limits.
func FuzzPOP3Response(f *testing.F) {
	seeds := []string{
		"+OK\r\n1 abc\r\n2 def\r\n.\r\n",
		"+OK 2 messages\r\n1 120\r\n2 200 extra\r\n.\r\n",
		"-ERR no such thing\r\n",
		"+OK\r\nSTLS\r\nUIDL\r\nSASL PLAIN\r\n.\r\n",
		"+OK\r\n..stuffed\r\n.\r\n",
		"+OK\r\nline without end",
		"garbage\r\n",
		"+OK\n1 x\n.\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzList(t, data)
		fuzzMessage(t, data)
	})
}

// fuzzList reads a status line and a listing and parses it every way.
func fuzzList(t *testing.T, data []byte) {
	p := &pop3Conn{r: bufio.NewReaderSize(bytes.NewReader(data), readBuffer)}
	if _, err := p.readStatus("FUZZ"); err != nil {
		return
	}
	lines, err := p.readList("FUZZ")
	if err != nil {
		return
	}
	for _, l := range lines {
		if len(l) > maxStatusLine {
			t.Fatalf("line of %d bytes accepted", len(l))
		}
	}
	if entries, err := parseUIDL(lines); err == nil {
		for _, e := range entries {
			if !validUID(e.UID) || e.Num < 1 {
				t.Fatalf("bad entry accepted: %+v", e)
			}
		}
	}
	_, _ = parseList(lines)
	_ = parseCapa(lines)
}

// fuzzMessage reads a RETR body with a small limit.
func fuzzMessage(t *testing.T, data []byte) {
	const limit = 64
	p := &pop3Conn{r: bufio.NewReaderSize(bytes.NewReader(data), readBuffer)}
	msg, truncated, err := p.readMessage(limit)
	if err != nil {
		return
	}
	if len(msg) > limit {
		t.Fatalf("message of %d bytes over limit %d", len(msg), limit)
	}
	if !truncated && len(msg) >= len(data) {
		t.Fatalf("message of %d bytes from %d input bytes: unstuffing only removes", len(msg), len(data))
	}
}
