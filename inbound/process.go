package inbound

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mailgate/mailgate/bounce"
	"github.com/mailgate/mailgate/store"
)

// Result is what Process made of one mailbox message.
type Result struct {
	// Kind is the report kind (bounce.KindBounce, …).
	Kind string
	// Matched is true when the message was tied to one of ours.
	Matched bool
	// MessageID is the matched message's id, "" when unmatched.
	MessageID string
	// Authenticated is true when a valid VERP token named the recipient:
	// only then did the message change state.
	Authenticated bool
	// Duplicate is true when the mailbox message had already been
	// recorded: nothing was written this time.
	Duplicate bool
}

// processed is a parsed, correlated message with its effects; effects[i]
// came from results[i].
type processed struct {
	report *bounce.Report
	target *store.InboundTarget
	// authenticated: see match.authenticated.
	authenticated bool
	effects       []store.InboundEffect
	results       []bounce.Result
	// parseErr is set when the message could not be parsed at all.
	parseErr error
}

// Process parses one mailbox message, ties it to the message it answers
// and commits its effects with the inbound row in one transaction. An
// error means nothing was written (the store failed) and the message
// should be tried again; mail that cannot be parsed or matched is recorded
// as unmatched, not refused.
func (p *Poller) Process(ctx context.Context, mailbox string, msg Message) (Result, error) {
	pm, err := p.prepare(ctx, msg.Raw)
	if err != nil {
		return Result{}, err
	}
	rec := p.record(mailbox, msg, pm)
	res, err := p.deps.Store.RecordInbound(ctx, rec)
	if err != nil {
		return Result{}, fmt.Errorf("process %s/%s: %w", mailbox, msg.ID, err)
	}
	out := Result{Kind: pm.report.Kind, Matched: pm.target != nil, MessageID: rec.MessageID,
		Authenticated: pm.authenticated, Duplicate: res.Duplicate}
	if !res.Duplicate {
		p.metrics.observe(mailbox, pm, res)
	}
	return out, nil
}

// prepare parses and correlates raw and decides the effects.
func (p *Poller) prepare(ctx context.Context, raw []byte) (processed, error) {
	rep, err := p.parser.Parse(raw)
	if err != nil {
		return processed{report: &bounce.Report{Kind: bounce.KindUnknown, Results: []bounce.Result{}},
			parseErr: err}, nil
	}
	if rep.Reply != nil {
		rep.Reply.Text = truncateText(rep.Reply.Text, maxReplyText)
	}
	m, err := p.correlate(ctx, rep)
	if err != nil || m.target == nil {
		return processed{report: rep}, err
	}
	pm := processed{report: rep, target: m.target, authenticated: m.authenticated}
	var files []Attachment
	if rep.Kind == bounce.KindReply {
		files = attachments(raw)
	}
	for _, tg := range concerned(m, rep) {
		if ef, ok := effect(rep, tg, files, m.authenticated); ok {
			pm.effects = append(pm.effects, ef)
			pm.results = append(pm.results, tg.result)
		}
	}
	return pm, nil
}

// maxReplyText bounds the reply text kept in events and inbound rows
// (64 KiB): enough for any message a person writes, not for a hostile one.
const maxReplyText = 64 << 10

// truncateText cuts s to at most n bytes without splitting a character.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// record is the store row for pm.
func (p *Poller) record(mailbox string, msg Message, pm processed) store.InboundRecord {
	rec := store.InboundRecord{
		Mailbox: mailbox, MailboxMessageID: msg.ID, ReceivedAt: p.cfg.Now(), Kind: pm.report.Kind,
		Summary: summaryJSON(pm), RawSize: int64(len(msg.Raw)), RawHead: p.rawHead(msg.Raw),
		Authenticated: pm.authenticated, Effects: pm.effects, SoftBounceLimit: p.cfg.SoftBounceLimit,
	}
	if pm.target != nil {
		rec.ProjectID, rec.MessageID = pm.target.ProjectID, pm.target.ID
	}
	for _, ef := range pm.effects {
		if ef.Email != "" {
			rec.Recipient = ef.Email
			break
		}
	}
	return rec
}

// rawHead is the part of raw that is kept: the first KeepRawBytes.
func (p *Poller) rawHead(raw []byte) []byte {
	n := min(len(raw), max(p.cfg.KeepRawBytes, 0))
	if n == 0 {
		return nil
	}
	return raw[:n]
}

// summary is the stored JSON of a report: the report itself (without the
// raw message) and, when it could not be parsed, why.
type summary struct {
	*bounce.Report
	Error string `json:"error,omitempty"`
}

func summaryJSON(pm processed) json.RawMessage {
	s := summary{Report: pm.report}
	if pm.parseErr != nil {
		s.Error = pm.parseErr.Error()
	}
	b, err := json.Marshal(s)
	if err != nil {
		return json.RawMessage(`{}`)
	}
	return b
}
