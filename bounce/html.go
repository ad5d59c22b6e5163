package bounce

import (
	"html"
	"strings"
)

// htmlToText converts HTML to plain text: elements that are never shown
// are dropped, block elements become line breaks, other tags vanish and
// entities are decoded. A deliberately small tag stripper written here
// rather than golang.org/x/net/html: no DOM is needed to read bounce
// notices and replies, and this one is linear in the input.
func htmlToText(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	word := strings.Contains(s, "MsoNormal") // HTML written by Word/Outlook
	for len(s) > 0 {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			b.WriteString(collapseSpace(s))
			break
		}
		b.WriteString(collapseSpace(s[:i]))
		s = s[i:]
		j := strings.IndexByte(s, '>')
		if j < 0 {
			break
		}
		name := tagName(s[1:j])
		if word && (name == "p" || name == "/p") {
			name = "div" // Word's paragraphs have no margin: one line each
		}
		s = s[j+1:]
		switch name {
		case "script", "style", "head", "title":
			s = skipPast(s, "</"+name)
		case "br":
			b.WriteByte('\n')
		case "p", "/p", "h1", "/h1", "h2", "/h2", "h3", "/h3", "h4", "/h4", "h5", "/h5", "h6", "/h6":
			lineBreak(&b)
			b.WriteByte('\n') // paragraphs are set apart by a blank line
		case "div", "/div", "tr", "/tr", "li", "/li", "blockquote", "/blockquote", "table", "/table",
			"hr", "ul", "/ul", "ol", "/ol", "pre", "/pre", "dt", "dd":
			lineBreak(&b)
		case "/td", "/th":
			b.WriteByte(' ')
		}
	}
	return tidyLines(html.UnescapeString(b.String()))
}

// lineBreak ends the current line unless it is already ended: block
// elements start on a new line, but do not add blank lines.
func lineBreak(b *strings.Builder) {
	if s := b.String(); len(s) > 0 && s[len(s)-1] != '\n' {
		b.WriteByte('\n')
	}
}

// tagName returns the lower-case name of a tag from its inside ("/div",
// "br", "!--"), without attributes.
func tagName(inside string) string {
	end := strings.IndexAny(inside, " \t\r\n/>")
	if end == 0 && strings.HasPrefix(inside, "/") {
		rest := inside[1:]
		e := strings.IndexAny(rest, " \t\r\n>")
		if e < 0 {
			e = len(rest)
		}
		return "/" + strings.ToLower(rest[:e])
	}
	if end < 0 {
		end = len(inside)
	}
	return strings.ToLower(inside[:end])
}

// skipPast returns s after the first case-insensitive occurrence of the
// closing tag prefix and its '>', or "" when there is none.
func skipPast(s, closing string) string {
	i := indexFold(s, closing)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.IndexByte(s, '>'); j >= 0 {
		return s[j+1:]
	}
	return ""
}

// indexFold is a case-insensitive strings.Index for an ASCII needle.
func indexFold(s, needle string) int {
	n := len(needle)
	for i := 0; i+n <= len(s); i++ {
		if strings.EqualFold(s[i:i+n], needle) {
			return i
		}
	}
	return -1
}

// collapseSpace turns HTML source white space (which renders as one space)
// into single spaces.
func collapseSpace(s string) string {
	if !strings.ContainsAny(s, "\r\n\t") && !strings.Contains(s, "  ") {
		return s
	}
	f := strings.Fields(s)
	out := strings.Join(f, " ")
	if len(s) > 0 && isSpaceByte(s[0]) && out != "" {
		out = " " + out
	}
	if len(s) > 0 && isSpaceByte(s[len(s)-1]) && out != "" {
		out += " "
	}
	return out
}

func isSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// tidyLines trims every line, replaces non-breaking spaces, and collapses
// runs of blank lines into one.
func tidyLines(s string) string {
	s = strings.ReplaceAll(s, "\u00a0", " ")
	lines := strings.Split(s, "\n")
	out := make([]string, 0, len(lines))
	blank := true
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" {
			if !blank {
				out = append(out, "")
			}
			blank = true
			continue
		}
		out = append(out, l)
		blank = false
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}
