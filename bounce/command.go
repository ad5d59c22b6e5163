package bounce

import (
	"strings"
)

// SMTP commands a failure can answer (RFC 5321 §4.1.1).
const (
	cmdMail = "MAIL"
	cmdRcpt = "RCPT"
	cmdData = "DATA"
	cmdHelo = "HELO" // also EHLO and the greeting: the client host was refused
)

// commandPhrases tell which command a failure answered, in the words of
// Postfix ("in reply to"), Exim ("after") and others; lower case.
var commandPhrases = []struct{ phrase, cmd string }{
	{"in reply to end of data", cmdData}, {"in reply to data", cmdData},
	{"after end of data", cmdData}, {"after data", cmdData}, {"during data", cmdData},
	{"in reply to mail from", cmdMail}, {"after mail from", cmdMail}, {"after mail command", cmdMail},
	// "after RCPT TO:<a>", "after RCPT command", "in reply to RCPT TO command".
	{"in reply to rcpt", cmdRcpt}, {"after rcpt", cmdRcpt},
	{"in reply to helo", cmdHelo}, {"in reply to ehlo", cmdHelo}, {"after helo", cmdHelo},
	{"after ehlo", cmdHelo}, {"after initial connection", cmdHelo},
	// qmail-remote's wording.
	{"does not like recipient", cmdRcpt}, {"but sender was rejected", cmdMail},
	{"but my name was rejected", cmdHelo}, {"but greeting failed", cmdHelo},
	{"failed on data command", cmdData}, {"failed after i sent the message", cmdData},
}

// commandPhraseKeys are the phraseKeys of commandPhrases (read only).
var commandPhraseKeys = func() [][]uint16 {
	keys := make([][]uint16, len(commandPhrases))
	for i, p := range commandPhrases {
		keys[i] = phraseKeys(p.phrase)
	}
	return keys
}()

// failedCommand returns the SMTP command the failure in notice answered, or
// "" when the notice does not say. A session transcript (">>> CMD" then
// "<<< 5xx") counts too.
func failedCommand(notice string) string {
	var set bigramSet
	set.add(notice)
	best, at := "", -1
	for j, p := range commandPhrases {
		if !set.mayContain(commandPhraseKeys[j]) {
			continue
		}
		if i := strings.Index(notice, p.phrase); i >= 0 && (at < 0 || i < at) {
			best, at = p.cmd, i
		}
	}
	if best != "" {
		return best
	}
	return transcriptCommand(notice)
}

// transcriptCommand reads a session transcript: the last ">>> " command
// before the first "<<< 4xx/5xx" answer.
func transcriptCommand(notice string) string {
	last := ""
	for _, line := range strings.Split(notice, "\n") {
		l := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(l, ">>> "):
			last = strings.ToUpper(strings.Fields(l[4:] + " x")[0])
		case strings.HasPrefix(l, "<<< 4"), strings.HasPrefix(l, "<<< 5"):
			switch last {
			case "MAIL", "RCPT", "DATA", "HELO":
				return last
			case "EHLO":
				return cmdHelo
			}
			if strings.HasPrefix(last, ".") {
				return cmdData
			}
			return ""
		}
	}
	return ""
}

// adjustForCommand refines a reason by the command it answered: an
// "unknown user" answer to DATA comes from a content filter, not from the
// mailbox lookup; any refusal of MAIL FROM is about the sender.
func adjustForCommand(reason, cmd string) string {
	switch {
	case cmd == cmdData && reason == ReasonUserUnknown:
		return ReasonFiltered
	case cmd == cmdMail && (reason == ReasonUserUnknown || reason == ReasonHostUnknown):
		return ReasonRejected
	}
	return reason
}
