package bounce

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Default limits, used for zero Limits fields.
const (
	// DefaultMaxBytes is the default Limits.MaxBytes: 10 MiB.
	DefaultMaxBytes = 10 << 20
	// DefaultMaxDepth is the default Limits.MaxDepth: 20 levels.
	DefaultMaxDepth = 20
	// DefaultMaxParts is the default Limits.MaxParts: 1000 entities.
	DefaultMaxParts = 1000
)

// ErrEmpty is returned by Parse for empty input.
var ErrEmpty = errors.New("bounce: empty message")

// Limits bounds the work done on one message. Past a limit the parse is
// truncated, not refused: the report is made from what came before, which
// for a bounce is the part that matters (the status comes before the
// returned original).
type Limits struct {
	// MaxBytes is how much of the raw message is read; bytes past it are
	// ignored. It also bounds the decoded text kept. Default 10 MiB.
	MaxBytes int64
	// MaxDepth is the deepest MIME nesting followed; deeper parts are
	// ignored. Default 20.
	MaxDepth int
	// MaxParts is the number of MIME entities read; later parts are
	// ignored. Default 1000.
	MaxParts int
}

// withDefaults fills zero or negative fields with the defaults.
func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxParts <= 0 {
		l.MaxParts = DefaultMaxParts
	}
	return l
}

// Parser parses returned messages under fixed limits. It is stateless and
// safe for concurrent use.
type Parser struct {
	lim   Limits
	rules []Rule     // the operator phrase rules
	tbl   *ruleTable // the built-in rules, status meanings overridden by the operator's
}

// New returns a Parser with the given limits (zero fields take defaults),
// the built-in rules (the embedded file builtin.rules) and the operator
// rules (see ParseRules), which override the built-in ones: the status
// rules among them change the status codes' meanings, the phrase rules
// are tried after the built-in decision. A status rule whose Status is
// not a code as ParseRules writes it is ignored. New panics only if the
// embedded file does not parse, which the package's tests rule out.
func New(lim Limits, rules ...Rule) *Parser {
	tbl, err := builtinTable()
	if err != nil {
		panic(err)
	}
	phrases := rules
	if slices.ContainsFunc(rules, isStatusRule) {
		phrases = slices.DeleteFunc(slices.Clone(rules), isStatusRule)
	}
	return &Parser{lim: lim.withDefaults(), rules: phrases, tbl: tbl.withOperatorStatus(rules)}
}

// isStatusRule reports whether r is a status rule.
func isStatusRule(r Rule) bool { return r.Status != "" }

// Parse parses with the default limits. See Parser.Parse.
func Parse(raw []byte) (*Report, error) {
	return New(Limits{}).Parse(raw)
}

// Parse parses a raw message (LF or CRLF line endings, optionally starting
// with an mbox "From " line) and classifies it. It returns an error only
// when the input is empty or its top-level header cannot be read; any other
// message yields a report, kind "unknown" at worst.
func (p *Parser) Parse(raw []byte) (*Report, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, ErrEmpty
	}
	if int64(len(raw)) > p.lim.MaxBytes {
		raw = raw[:p.lim.MaxBytes]
	}
	msgs := splitMbox(repairFolding(raw))
	r, err := p.parseOne(msgs[0])
	if err != nil {
		return nil, err
	}
	for _, next := range msgs[1:] {
		more, err := p.parseOne(next)
		if err == nil && more.Kind == r.Kind {
			r.Results = append(r.Results, more.Results...)
		}
	}
	return r, nil
}

// parseOne parses and classifies one message.
func (p *Parser) parseOne(raw []byte) (*Report, error) {
	t, err := readTree(raw, p.lim)
	if err != nil {
		return nil, fmt.Errorf("bounce: read message header: %w", err)
	}
	m := newMsg(t, p.tbl)
	r := &Report{Kind: KindUnknown, Results: []Result{}}
	r.Refs = m.refs()
	classify(m, r)
	for i := range r.Results {
		applyRules(p.rules, &r.Results[i])
	}
	return r, nil
}

// Classify decides one failed delivery that a provider reported outside a
// bounce message (a webhook, an API event): status is the RFC 3463 status
// code it gave, or ""; diagnostic is the remote server's answer, with or
// without its RFC 3464 §2.3.6 type ("smtp; 550 5.1.1 <a@b>: user
// unknown"). The result has Action "failed" and Reason, Hard, Rule and
// Status filled by the same rules, in the same order, as a recipient of a
// delivery status notification: the built-in rules, then the operator
// rules. A status with no code in it (and no code in the diagnostic)
// yields the class-only status the reason implies ("5.0.0" or "4.0.0").
//
// Only the first maxDiagnostic bytes of diagnostic are read: a
// notification's body may be megabytes, and the rules' cost grows with the
// text (a DSN's fields are bounded by the parser's Limits instead).
func (p *Parser) Classify(status, diagnostic string) Result {
	x := statedResult("failed", status, truncateUTF8(diagnostic, maxDiagnostic))
	finishResult(&x, "", p.tbl)
	applyRules(p.rules, &x)
	return x
}

// maxDiagnostic bounds the diagnostic Classify reads: four times the 512
// octets of an SMTP reply line (RFC 5321 §4.5.3.1.5), room for a
// multi-line answer.
const maxDiagnostic = 2048

// truncateUTF8 returns s cut to at most n bytes, not inside a UTF-8
// sequence.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// maxMboxMessages bounds how many messages of an mbox-style input are read.
const maxMboxMessages = 16

// splitMbox splits input that starts with an mbox "From " line into its
// messages (at most maxMboxMessages; the last keeps the rest), each
// without its separator line. Other input is one message.
func splitMbox(raw []byte) [][]byte {
	if !bytes.HasPrefix(raw, []byte("From ")) {
		return [][]byte{raw}
	}
	var out [][]byte
	for len(out) < maxMboxMessages-1 {
		raw = skipMboxLine(raw)
		i := bytes.Index(raw, []byte("\nFrom "))
		if i < 0 {
			break
		}
		out = append(out, raw[:i+1])
		raw = raw[i+1:]
	}
	return append(out, skipMboxLine(raw))
}

// skipMboxLine drops a leading mbox "From " separator line.
func skipMboxLine(raw []byte) []byte {
	if !bytes.HasPrefix(raw, []byte("From ")) {
		return raw
	}
	if i := bytes.IndexByte(raw, '\n'); i >= 0 {
		return raw[i+1:]
	}
	return raw
}

// classify fills r.Kind and the results, trying the standards first, then
// the heuristics for non-standard bounces, then auto-replies and replies.
func classify(m *msg, r *Report) {
	switch {
	case classifyARF(m, r):
	case classifyDSN(m, r):
	case classifySES(m, r):
	case classifyTextBounce(m, r):
	case classifyAutoReply(m, r):
	case classifyReply(m, r):
	}
}
