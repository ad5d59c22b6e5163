package inbound

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/mailgate/mailgate/bounce"
	"github.com/mailgate/mailgate/feedback"
	"github.com/mailgate/mailgate/store"
)

// FeedbackConfig configures Feedback.
type FeedbackConfig struct {
	// SoftBounceLimit is how many soft bounces in a row suppress an
	// address. Default store.DefaultSoftBounceLimit.
	SoftBounceLimit int
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// BounceRules are the operator classification rules
	// (bounce.ParseRules), the poller's: a provider's bounce is classified
	// as a mailbox bounce is.
	BounceRules []bounce.Rule
}

// Feedback applies the events of verified provider notifications (package
// feedback) with the effects a mailbox bounce, complaint or delivery
// report has: recipient status, event, suppression, soft-bounce count and
// metrics, in one transaction per event. It is safe for concurrent use.
type Feedback struct {
	cfg     FeedbackConfig
	store   *store.Store
	metrics *Metrics
	parser  *bounce.Parser
}

// NewFeedback returns a Feedback writing to st and counting into m (the
// poller's collectors when both run in one process; nil for unregistered
// ones).
func NewFeedback(cfg FeedbackConfig, st *store.Store, m *Metrics) *Feedback {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if m == nil {
		m = NewMetrics()
	}
	return &Feedback{cfg: cfg, store: st, metrics: m, parser: bounce.New(bounce.Limits{}, cfg.BounceRules...)}
}

// FeedbackMailbox is the inbound rows' mailbox name for provider's
// notifications: /v1/inbound lists them with the mailbox reports.
func FeedbackMailbox(provider string) string { return "feedback/" + provider }

// Apply records each event of a notification that the provider's own
// scheme authenticated for projectID, and returns how many changed a
// recipient. An event is tied to its message by the X-Mailgate-ID the
// provider echoes, else the Message-ID, and only to a message of
// projectID: a project's provider credentials vouch for nothing else. An
// event seen before (same provider event id at the same project) writes
// nothing; the id is kept per project because a project chooses its own
// credentials (a SendGrid key, a Postmark password) and could otherwise
// post another project's future event ids to its own endpoint first, so
// that the real events were dropped as duplicates. An error
// means the store failed: the caller should answer so the provider retries.
func (f *Feedback) Apply(ctx context.Context, provider, projectID string, events []feedback.Event) (int, error) {
	applied := 0
	for _, e := range events {
		n, err := f.apply(ctx, provider, projectID, e)
		if err != nil {
			return applied, err
		}
		applied += n
	}
	return applied, nil
}

func (f *Feedback) apply(ctx context.Context, provider, projectID string, e feedback.Event) (int, error) {
	mailbox := FeedbackMailbox(provider)
	pm, err := f.prepare(ctx, provider, projectID, e)
	if err != nil {
		return 0, err
	}
	summary, _ := json.Marshal(e)
	rec := store.InboundRecord{Mailbox: mailbox, MailboxMessageID: projectID + "/" + eventID(e, summary), ReceivedAt: f.cfg.Now(),
		Kind: pm.report.Kind, Summary: summary, RawSize: int64(len(summary)), Authenticated: pm.authenticated,
		Effects: pm.effects, SoftBounceLimit: f.cfg.SoftBounceLimit}
	// The notification came to the project's own endpoint, so one tied to
	// no message of the project is still the project's (listed with
	// matched=false), unlike unmatched mail in a shared mailbox.
	rec.ProjectID = projectID
	if pm.target != nil {
		rec.MessageID, rec.Recipient = pm.target.ID, e.Recipient
	}
	res, err := f.store.RecordInbound(ctx, rec)
	if err != nil {
		return 0, fmt.Errorf("feedback %s: %w", provider, err)
	}
	if res.Duplicate {
		return 0, nil
	}
	f.metrics.observe(mailbox, pm, res)
	n := 0
	for _, r := range res.Effects {
		if r.Applied {
			n++
		}
	}
	return n, nil
}

// prepare ties e to a message of projectID and decides its effect, as
// Poller.prepare does for a mailbox report.
func (f *Feedback) prepare(ctx context.Context, provider, projectID string, e feedback.Event) (processed, error) {
	res := bounce.Result{Recipient: e.Recipient, Rule: "provider:" + provider}
	if e.Kind == feedback.KindBounce || e.Kind == feedback.KindDelay {
		res = f.classify(provider, e)
	}
	rep := &bounce.Report{Kind: reportKind(e.Kind), FeedbackType: e.FeedbackType, Results: []bounce.Result{res}}
	pm := processed{report: rep}
	for _, ref := range []string{e.MailgateID, e.MessageID} {
		id, ok := messageIDPart(ref)
		if !ok {
			continue
		}
		t, err := f.store.LoadInboundTarget(ctx, id)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			return pm, fmt.Errorf("feedback: %w", err)
		}
		if t.ProjectID != projectID {
			continue
		}
		pm.target, pm.authenticated = &t, true
		break
	}
	if pm.target == nil {
		return pm, nil
	}
	i := recipientIndex(pm.target, e.Recipient)
	if i < 0 {
		return pm, nil
	}
	tg := target{position: i, email: pm.target.Recipients[i].Email, result: res}
	if ef, ok := effect(rep, tg, nil, true); ok {
		pm.effects, pm.results = []store.InboundEffect{ef}, []bounce.Result{res}
	}
	return pm, nil
}

// classify decides a provider's bounce: the reason, status and reply code
// by the rules a mailbox bounce is classified with (built-in, then the
// operator's) from the status and diagnostic the provider reports; hard
// or soft by the provider's own verdict when it gives one (it saw every
// attempt and acts on it: a permanent bounce is on its suppression list),
// else by the same rules. The rule says both parts:
// "provider:NAME:VERDICT/RULE" (VERDICT permanent or temporary) or
// "provider:NAME/RULE" without a verdict, RULE the classifying rule's id
// (bounce.Result.Rule), e.g. "provider:ses:permanent/status:5.1.1".
// When the status and diagnostic explain nothing (no code, no phrase, no
// operator rule: the result is a fallback), the provider's named cause
// decides the reason, RULE "cause:REASON".
func (f *Feedback) classify(provider string, e feedback.Event) bounce.Result {
	res := f.parser.Classify(e.Status, e.Diagnostic)
	res.Recipient = e.Recipient
	if e.Cause != "" && strings.HasPrefix(res.Rule, "fallback:") {
		res.Reason, res.Rule = e.Cause, "cause:"+e.Cause
		res.Hard = bounce.IsHard(res.Reason, res.Status)
	}
	decidedBy := "provider:" + provider
	if e.Severity != "" {
		res.Hard = e.Severity == feedback.SeverityPermanent
		decidedBy += ":" + e.Severity
	}
	res.Rule = decidedBy + "/" + res.Rule
	return res
}

// reportKind is bounce's report kind for a feedback event kind.
func reportKind(kind string) string {
	switch kind {
	case feedback.KindBounce:
		return bounce.KindBounce
	case feedback.KindComplaint:
		return bounce.KindComplaint
	case feedback.KindDelivery:
		return bounce.KindDelivered
	case feedback.KindDelay:
		// Recorded and changing nothing, as a DSN with Action delayed.
		return bounce.KindDelayed
	}
	return bounce.KindUnknown
}

// maxEventID bounds a provider event id kept as it is: providers' ids are
// tens of bytes, and a unique index holds a bounded key (PostgreSQL's
// B-tree about 2.7 kB).
const maxEventID = 256

// eventID is the provider's event id, or a digest of the event when the
// provider gave none. An id that cannot be stored as it is (longer than
// maxEventID, or with a control character: PostgreSQL's text holds no
// NUL) is replaced by its digest, which stays as unique.
func eventID(e feedback.Event, summary []byte) string {
	switch {
	case e.ID == "":
		return digest(summary)
	case len(e.ID) > maxEventID || strings.ContainsFunc(e.ID, unicode.IsControl):
		return digest([]byte(e.ID))
	}
	return e.ID
}

func digest(b []byte) string {
	d := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(d[:])
}
