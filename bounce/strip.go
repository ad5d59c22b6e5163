package bounce

import (
	"regexp"
	"strings"
)

var (
	// attributionRe matches the line a client writes above a quote: "On
	// … wrote:", "Am … schrieb …:", "… schrieb am …:", "Le … a écrit :",
	// "El … escribió:", "Il … ha scritto:", "Op … schreef …:". A match
	// counts only with a date or an address on the line (see isAttribution).
	attributionRe = regexp.MustCompile(`(?i)^(?:.+\bwrote|.+\bschrieb\b.*|.+\ba\s+écrit.*|.+\bescribió.*|.+\bha\s+scritto.*|.+\bschreef\b.*|.+\bskrev.*)\s*:\s*$`)
	// separatorRe matches the lines that open a quoted original in
	// Outlook, Thunderbird and others.
	separatorRe = regexp.MustCompile(`(?i)^(?:-{2,}\s*(?:original message|original-nachricht|ursprüngliche nachricht|message d'origine|message original|mensaje original|messaggio originale|oorspronkelijk bericht)\s*-{2,}|_{20,})\s*$`)
	// headerStartRe and headerNextRe find Outlook's quoted header block
	// ("From: … / Sent: … / To: … / Subject: …") in English, German and
	// French.
	headerStartRe = regexp.MustCompile(`(?i)^\*?(?:from|von|de|van|da)\s?\*?\s?:\s*\*?\s*\S`)
	headerNextRe  = regexp.MustCompile(`(?i)^\*?(?:sent|date|gesendet|datum|envoyé|envoye|date d'envoi|enviado|inviato|verzonden|to|an|à|a|para|aan|subject|betreff|objet|asunto|oggetto|onderwerp)\s?\*?\s?:`)
	// footerRe matches mobile and webmail footers.
	footerRe = regexp.MustCompile(`(?i)^(?:sent from |sent with |sent via |sent using |get outlook for |von meinem .*gesendet|gesendet (?:von|mit|vom) |envoyé (?:de|depuis|à partir de|avec) |envoye de mon |télécharger outlook|obtenir outlook|von outlook für|holen sie sich outlook|diese nachricht wurde von meinem|enviado (?:desde|do meu|de mi) |inviato da |verzonden (?:vanaf|met) )`)
)

// StripReply returns the new text of a reply: the quoted history (">"
// lines, attribution lines, Outlook and Thunderbird original-message
// blocks), a "-- " signature block and mobile footers are removed; the
// sign-off is kept. Inline answers between quotes are kept. Line endings
// become "\n", runs of blank lines become one, and the result is trimmed.
func StripReply(text string) string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	lines := strings.Split(text, "\n")
	lines = cutHistory(lines)
	lines = dropQuoted(lines)
	lines = dropSignature(lines)
	lines = dropFooters(lines)
	return tidyLines(strings.Join(lines, "\n"))
}

// cutHistory drops everything from the first line that opens a quoted
// original which is not ">"-quoted (top posting).
func cutHistory(lines []string) []string {
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if separatorRe.MatchString(l) || isHeaderBlock(lines, i) {
			return lines[:i]
		}
		if n := attributionAt(lines, i); n > 0 && !quotedFollows(lines, i+n) {
			return lines[:i]
		}
	}
	return lines
}

// attributionAt returns how many lines (1 or 2, wrapped) form an
// attribution line at i, or 0.
func attributionAt(lines []string, i int) int {
	l := strings.TrimSpace(lines[i])
	if l == "" || strings.HasPrefix(l, ">") || len(l) > 300 {
		return 0
	}
	if isAttribution(l) {
		return 1
	}
	if i+1 < len(lines) {
		next := strings.TrimSpace(lines[i+1])
		if next != "" && !strings.HasPrefix(next, ">") && startsAttribution(l) && isAttribution(l+" "+next) {
			return 2
		}
	}
	return 0
}

// isAttribution reports whether a line is an attribution: the shape of
// one, and a date or an address in it (which "Here is what I wrote:"
// lacks).
func isAttribution(l string) bool {
	return strings.ContainsAny(l, "0123456789@") && attributionRe.MatchString(l)
}

// startsAttribution reports whether a line can begin a wrapped attribution.
func startsAttribution(l string) bool {
	lower := strings.ToLower(l)
	for _, p := range []string{"on ", "am ", "le ", "el ", "il ", "op "} {
		if strings.HasPrefix(lower, p) {
			return true
		}
	}
	return false
}

// quotedFollows reports whether the first non-blank line from i is
// ">"-quoted.
func quotedFollows(lines []string, i int) bool {
	for ; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if l != "" {
			return strings.HasPrefix(l, ">")
		}
	}
	return true // an attribution at the very end quotes nothing we keep
}

// isHeaderBlock reports whether an Outlook-style quoted header block
// ("From:" followed by "Sent:"/"To:"/"Subject:" lines) starts at i.
func isHeaderBlock(lines []string, i int) bool {
	if !headerStartRe.MatchString(strings.TrimSpace(lines[i])) {
		return false
	}
	hits := 0
	for j := i + 1; j < len(lines) && j <= i+6; j++ {
		if headerNextRe.MatchString(strings.TrimSpace(lines[j])) {
			hits++
		}
	}
	return hits >= 2
}

// dropQuoted removes ">"-quoted lines and the attribution lines above them,
// keeping the answers written between quotes.
func dropQuoted(lines []string) []string {
	out := lines[:0:0]
	for i := 0; i < len(lines); i++ {
		if n := attributionAt(lines, i); n > 0 {
			i += n - 1
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(lines[i]), ">") {
			continue
		}
		out = append(out, lines[i])
	}
	return out
}

// dropSignature removes a "-- " signature block (RFC 3676 §4.3) up to the
// end or to the next quoted part.
func dropSignature(lines []string) []string {
	for i, l := range lines {
		if l == "-- " || l == "--" || l == "— " {
			return lines[:i]
		}
	}
	return lines
}

// dropFooters removes mobile and webmail footer lines.
func dropFooters(lines []string) []string {
	out := lines[:0:0]
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if len(t) < 100 && footerRe.MatchString(t) {
			continue
		}
		out = append(out, l)
	}
	return out
}

// hasQuotedHistory reports whether text quotes an earlier message under an
// attribution line or an original-message block.
func hasQuotedHistory(text string) bool {
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	for i := range lines {
		l := strings.TrimSpace(lines[i])
		if separatorRe.MatchString(l) && !strings.HasPrefix(l, "_") || isHeaderBlock(lines, i) {
			return true
		}
		if n := attributionAt(lines, i); n > 0 && i+n < len(lines) {
			return true
		}
	}
	return false
}
