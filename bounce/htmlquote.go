package bounce

import (
	"strings"
)

// dropHTMLQuotes removes the quoted history of an HTML reply before it is
// turned into text: Gmail's gmail_quote blocks, Apple Mail's and
// Thunderbird's <blockquote type="cite">, Yahoo's yahoo_quoted,
// Thunderbird's moz-cite-prefix, and everything from Outlook's
// divRplyFwdMsg/appendonsend markers on.
func dropHTMLQuotes(s string) string {
	h := newHTMLDoc(s)
	for _, mk := range []string{`id="divrplyfwdmsg"`, `id="appendonsend"`, `id=divrplyfwdmsg`, `class="outlookmessageheader"`} {
		if i := strings.Index(h.lower, mk); i >= 0 {
			if j := strings.LastIndexByte(h.lower[:i], '<'); j >= 0 {
				h.cut(j, len(h.src))
			}
		}
	}
	h.dropElements("div", `gmail_quote`)
	h.dropElements("blockquote", `type="cite"`)
	h.dropElements("div", `yahoo_quoted`)
	h.dropElements("div", `moz-cite-prefix`)
	h.dropElements("blockquote", `gmail_quote`)
	return h.src
}

// htmlDoc is HTML source with an ASCII-lower-cased copy of the same length,
// so that tags are found case-insensitively at the same offsets.
type htmlDoc struct {
	src, lower string
}

func newHTMLDoc(s string) *htmlDoc {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return &htmlDoc{src: s, lower: string(b)}
}

// cut removes src[i:j] from both copies.
func (h *htmlDoc) cut(i, j int) {
	h.src = h.src[:i] + h.src[j:]
	h.lower = h.lower[:i] + h.lower[j:]
}

// dropElements removes every element named tag (lower case) whose start
// tag contains marker (lower case), with its content, matching nested
// elements of the same name.
func (h *htmlDoc) dropElements(tag, marker string) {
	from := 0
	for n := 0; n < 1000; n++ {
		start := h.findStartTag(tag, marker, from)
		if start < 0 {
			return
		}
		h.cut(start, h.matchingEnd(start, tag))
		from = start
	}
}

// findStartTag returns the index of a start tag <tag ...marker...> at or
// after from, or -1.
func (h *htmlDoc) findStartTag(tag, marker string, from int) int {
	open := "<" + tag
	for {
		i := strings.Index(h.lower[from:], open)
		if i < 0 {
			return -1
		}
		i += from
		j := strings.IndexByte(h.lower[i:], '>')
		if j < 0 {
			return -1
		}
		if strings.Contains(h.lower[i:i+j], marker) {
			return i
		}
		from = i + j
	}
}

// matchingEnd returns the index just past the end tag that closes the
// element starting at start, or the end of the document when it is never
// closed.
func (h *htmlDoc) matchingEnd(start int, tag string) int {
	s := h.lower
	depth := 0
	for i := start; i < len(s); {
		j := strings.IndexByte(s[i:], '<')
		if j < 0 {
			break
		}
		i += j
		rest := s[i:]
		switch {
		case strings.HasPrefix(rest, "</"+tag):
			depth--
			k := strings.IndexByte(rest, '>')
			if k < 0 {
				return len(s)
			}
			if depth <= 0 {
				return i + k + 1
			}
			i += k + 1
		case strings.HasPrefix(rest, "<"+tag) && len(rest) > len(tag)+1 && strings.IndexByte(" \t\r\n>", rest[len(tag)+1]) >= 0:
			depth++
			i++
		default:
			i++
		}
	}
	return len(s)
}
