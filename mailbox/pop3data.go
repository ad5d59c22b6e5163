package mailbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// readMessage reads a RETR body (RFC 1939 §7) up to the terminating line
// ".", removing the byte-stuffed leading dot of other lines (§3). It keeps
// the first limit bytes and discards the rest (truncated reports that),
// reading line fragments of at most readBuffer bytes so that neither a long
// line nor a long message is held beyond limit.
func (p *pop3Conn) readMessage(limit int64) (msg []byte, truncated bool, err error) {
	var buf bytes.Buffer
	lineStart := true
	for {
		p.deadline()
		frag, err := p.r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, false, fmt.Errorf("pop3 RETR: %w", err)
		}
		complete := err == nil
		if lineStart && len(frag) > 0 && frag[0] == '.' {
			if complete && isTerminator(frag) {
				return buf.Bytes(), truncated, nil
			}
			frag = frag[1:]
		}
		lineStart = complete
		room := limit - int64(buf.Len())
		if int64(len(frag)) > room {
			frag, truncated = frag[:max(room, 0)], true
		}
		buf.Write(frag)
	}
}

// isTerminator reports whether a complete line is the multi-line end ".".
func isTerminator(line []byte) bool {
	return string(line) == ".\r\n" || string(line) == ".\n"
}

// uidlEntry is one line of a UIDL listing (RFC 1939 §7).
type uidlEntry struct {
	Num int
	UID string
}

// parseUIDL parses "msg-number unique-id" lines. A unique-id is 1 to 70
// characters in 0x21..0x7E; a listing repeating an id is rejected, since
// ids must be unique within the maildrop.
func parseUIDL(lines []string) ([]uidlEntry, error) {
	entries := make([]uidlEntry, 0, len(lines))
	seen := make(map[string]bool, len(lines))
	for _, line := range lines {
		num, uid, err := splitListing(line)
		if err != nil {
			return nil, fmt.Errorf("uidl: %w", err)
		}
		if !validUID(uid) {
			return nil, fmt.Errorf("uidl: %w: unique-id %q", errMalformed, truncate(uid, 80))
		}
		if seen[uid] {
			return nil, fmt.Errorf("uidl: %w: unique-id %q repeated", errMalformed, uid)
		}
		seen[uid] = true
		entries = append(entries, uidlEntry{Num: num, UID: uid})
	}
	return entries, nil
}

// validUID checks RFC 1939 §7's unique-id syntax.
func validUID(uid string) bool {
	if len(uid) < 1 || len(uid) > 70 {
		return false
	}
	for i := 0; i < len(uid); i++ {
		if uid[i] < 0x21 || uid[i] > 0x7e {
			return false
		}
	}
	return true
}

// parseList parses LIST lines "msg-number size-in-octets" (RFC 1939 §5)
// into a size by message number.
func parseList(lines []string) (map[int]int64, error) {
	sizes := make(map[int]int64, len(lines))
	for _, line := range lines {
		num, field, err := splitListing(line)
		if err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
		size, err := strconv.ParseInt(field, 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("list: %w: size %q", errMalformed, truncate(field, 32))
		}
		sizes[num] = size
	}
	return sizes, nil
}

// splitListing splits "number SP field" (extra text after field, which
// RFC 1939 permits for LIST, is ignored).
func splitListing(line string) (int, string, error) {
	numField, rest, ok := strings.Cut(line, " ")
	num, err := strconv.Atoi(numField)
	if !ok || err != nil || num < 1 {
		return 0, "", fmt.Errorf("%w: line %q", errMalformed, truncate(line, 64))
	}
	field, _, _ := strings.Cut(rest, " ")
	return num, field, nil
}

// parseCapa turns CAPA lines (RFC 2449 §5) into upper-cased capability
// names mapped to their arguments.
func parseCapa(lines []string) map[string]string {
	caps := make(map[string]string, len(lines))
	for _, line := range lines {
		name, args, _ := strings.Cut(strings.TrimSpace(line), " ")
		if name != "" {
			caps[strings.ToUpper(name)] = args
		}
	}
	return caps
}
