package inbound

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/bounce"
	"github.com/mailgate/mailgate/store"
)

// match is what correlation found: the message and, when the VERP token
// named it, the recipient position (else -1).
type match struct {
	target   *store.InboundTarget
	position int
	// via says which reference matched: verp, mailgate_id, message_id,
	// in_reply_to or references.
	via string
	// authenticated is true when a valid VERP token named the recipient:
	// only such a report changes state. Every other reference is copied
	// from headers anyone can quote, such as a recipient of the same
	// message.
	authenticated bool
}

// correlate ties a report to the message it answers, in order: the VERP
// token (HMAC-checked), the X-Mailgate-ID or Message-ID of the returned
// original, then, for replies and auto-replies, In-Reply-To and the
// References (newest first). A VERP token that does not authenticate, or
// names no stored message, leaves the report unmatched without looking
// further: a forged bounce must change nothing. Only a match by the token
// is authenticated. It returns a zero match (nil target) when nothing
// matches; an error only when the store fails.
func (p *Poller) correlate(ctx context.Context, rep *bounce.Report) (match, error) {
	if tok := rep.Refs.VERPToken; tok != "" {
		return p.byVERP(ctx, tok)
	}
	type ref struct{ via, id string }
	refs := []ref{{"mailgate_id", rep.Refs.MailgateID}, {"message_id", rep.Refs.OriginalMessageID}}
	if rep.Kind == bounce.KindReply || rep.Kind == bounce.KindAutoReply {
		refs = append(refs, ref{"in_reply_to", rep.Refs.InReplyTo})
		for _, r := range slices.Backward(rep.Refs.References) {
			refs = append(refs, ref{"references", r})
		}
	}
	for _, r := range refs {
		id, ok := messageIDPart(r.id)
		if !ok {
			continue
		}
		t, err := p.target(ctx, id)
		if err != nil || t != nil {
			return match{target: t, position: -1, via: r.via}, err
		}
	}
	return match{position: -1}, nil
}

// byVERP verifies the token and loads the message and recipient it names.
func (p *Poller) byVERP(ctx context.Context, token string) (match, error) {
	none := match{position: -1}
	id, pos, err := p.deps.VERP.Parse(token)
	if err != nil {
		// Forged or malformed: unmatched, and nothing else is trusted.
		return none, nil
	}
	t, err := p.target(ctx, id)
	if err != nil || t == nil || pos >= len(t.Recipients) {
		return none, err
	}
	return match{target: t, position: pos, via: "verp", authenticated: true}, nil
}

// target loads a message; nil when it does not exist.
func (p *Poller) target(ctx context.Context, id string) (*store.InboundTarget, error) {
	t, err := p.deps.Store.LoadInboundTarget(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("correlate: %w", err)
	}
	return &t, nil
}

// messageIDPart turns "<ID@domain>", "ID@domain" or a bare ID into the
// message UUID our Message-ID and X-Mailgate-ID headers carry.
func messageIDPart(ref string) (string, bool) {
	ref = strings.Trim(strings.TrimSpace(ref), "<>")
	if at := strings.IndexByte(ref, '@'); at >= 0 {
		ref = ref[:at]
	}
	if ref == "" {
		return "", false
	}
	u, err := uuid.Parse(ref)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// recipientIndex is the position of email among the message's
// recipients (case-insensitive), or -1.
func recipientIndex(t *store.InboundTarget, email string) int {
	email = strings.TrimSpace(email)
	if email == "" {
		return -1
	}
	for _, r := range t.Recipients {
		if strings.EqualFold(r.Email, email) {
			return r.Position
		}
	}
	return -1
}
