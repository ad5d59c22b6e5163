package store

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// A group of delivery calls (starts and outcomes, one or many) is written
// in one transaction, the same way whatever its size: the group's message
// rows are locked in id order and read with their recipients (and each
// recipient's suppression, if any); the calls are then applied in order
// to those rows in memory, each seeing the changes of the calls before it;
// and the rows that changed are written back (deliverypostgres.go,
// deliverysqlite.go). Every result is read from rows, never carried by an
// SQL error.

// deliveryOp is one call waiting for the delivery writer: a start or an
// outcome.
type deliveryOp struct {
	start   *startRequest
	outcome *outcomeRequest
}

// messageID is the message the call is about.
func (op deliveryOp) messageID() string {
	if op.start != nil {
		return op.start.id
	}
	return op.outcome.messageID
}

// startRequest is one StartDelivery call waiting for its group.
type startRequest struct {
	id        string
	ends      time.Time // the attempt's task deadline
	firstOnly bool      // StartFirstDelivery
	d         Delivery
	out       AttemptStart
	err       error
	done      chan struct{}
}

// outcomeRequest is one RecordOutcomes call waiting for its group.
type outcomeRequest struct {
	messageID string
	outs      []Outcome
	retryAt   time.Time
	err       error
	done      chan struct{}
}

// lockedMessage is one message of a group: its row and recipients as read
// under its lock, then as the group's calls change them.
type lockedMessage struct {
	d        Delivery // Recipients hold the current statuses; no Tags, Metadata
	eventSeq int64
	// tags and metadata are the stored JSON, decoded only for a start
	// (snapshot): an outcome does not need them.
	tags, metadata string
	// suppressed is the reason of each recipient (by position) whose
	// address was on the project's suppression list when read.
	suppressed map[int]string

	changed     bool
	attempts    int // attempts added
	dup         bool
	nextAttempt *time.Time   // nil keeps the stored one
	results     map[int]bool // positions whose status changed; true with an SMTP result
	outcomes    map[int]Outcome
	events      []eventRow
}

// eventRow is one event to insert.
type eventRow struct {
	projectID, messageID, recipient, typ string
	seq                                  int64
	data                                 string
}

// suppressionRow is one suppression to add (an existing one is kept).
type suppressionRow struct {
	projectID, email, reason, note string
}

// deliveryGroup is the rows of one group's messages and what its calls
// add to them.
type deliveryGroup struct {
	msgs         map[string]*lockedMessage
	suppressions []suppressionRow
	added        map[string]string // reason by project "\x00" address, added by this group
}

// groupIDs are the distinct messages of ops in id order, the order their
// rows are locked in.
func groupIDs(ops []deliveryOp) []string {
	ids := make([]string, 0, len(ops))
	for _, op := range ops {
		ids = append(ids, op.messageID())
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// apply runs ops, in order, on the group's rows, setting each call's
// result; nothing is answered here.
func (g *deliveryGroup) apply(ops []deliveryOp) {
	g.added = map[string]string{}
	for _, op := range ops {
		if op.start != nil {
			g.start(op.start)
		} else {
			g.record(op.outcome)
		}
	}
}

// start is StartDelivery on the group's rows.
func (g *deliveryGroup) start(r *startRequest) {
	m := g.msgs[r.id]
	if m == nil {
		r.d, r.out, r.err = Delivery{}, AttemptStart{}, fmt.Errorf("begin attempt %s: %w", r.id, ErrNotFound)
		return
	}
	r.out = AttemptStart{}
	if r.d, r.err = m.snapshot(); r.err != nil {
		return
	}
	if !anyPending(m.d.Recipients) {
		return
	}
	if r.firstOnly && m.d.Attempts > 0 {
		r.out.Attempted = true
		return
	}
	for i := range m.d.Recipients {
		rc := &m.d.Recipients[i]
		if !isPending(rc.Status) {
			continue
		}
		if reason, ok := g.suppression(m, *rc); ok {
			r.out.Suppressed = append(r.out.Suppressed, rc.Email)
			data, _ := json.Marshal(map[string]string{"reason": reason})
			m.event(rc.Email, EventSuppressed, data)
			m.set(rc, StatusSuppressed, false)
			continue
		}
		r.out.Send = append(r.out.Send, *rc)
		r.out.Interrupted = r.out.Interrupted || rc.Status == StatusSending
		m.set(rc, StatusSending, false)
	}
	m.d.Attempts++
	m.attempts++
	m.dup = m.dup || r.out.Interrupted
	m.d.PossiblyDuplicated = m.d.PossiblyDuplicated || r.out.Interrupted
	ends := r.ends
	m.nextAttempt = &ends
}

// suppression is the reason rc's address is suppressed in m's project,
// read with the rows or added by an earlier call of the group.
func (g *deliveryGroup) suppression(m *lockedMessage, rc DeliveryRecipient) (string, bool) {
	if reason, ok := g.added[m.d.ProjectID+"\x00"+normEmail(rc.Email)]; ok {
		return reason, true
	}
	reason, ok := m.suppressed[rc.Position]
	return reason, ok
}

// record is RecordOutcomes on the group's rows.
func (g *deliveryGroup) record(r *outcomeRequest) {
	m := g.msgs[r.messageID]
	if m == nil {
		r.err = fmt.Errorf("record outcomes of %s: %w", r.messageID, ErrNotFound)
		return
	}
	r.err = nil
	changed := false
	for _, o := range r.outs {
		rc := m.recipient(o.Position)
		if rc == nil || rc.Status != StatusSending {
			continue
		}
		changed = true
		m.set(rc, o.Status, true)
		o.SMTPResponse = cleanText(o.SMTPResponse)
		m.outcomes[o.Position] = o
		if o.Event != "" {
			m.event(o.Email, o.Event, o.EventData)
		}
		m.dup = m.dup || o.PossiblyDuplicated
		m.d.PossiblyDuplicated = m.d.PossiblyDuplicated || o.PossiblyDuplicated
		if o.Suppress != "" {
			g.suppress(m.d.ProjectID, o.Email, o.Suppress, "delivery "+m.d.ID+": "+truncate(o.SMTPResponse, 200))
		}
	}
	if changed && !r.retryAt.IsZero() && m.status() == StatusDeferred {
		at := r.retryAt
		m.nextAttempt = &at
	}
}

// suppress adds an address to the project's suppression list, unless the
// group already did.
func (g *deliveryGroup) suppress(projectID, email, reason, note string) {
	key := projectID + "\x00" + normEmail(email)
	if _, ok := g.added[key]; ok {
		return
	}
	g.added[key] = reason
	g.suppressions = append(g.suppressions, suppressionRow{projectID: projectID, email: normEmail(email),
		reason: reason, note: note})
}

// lockedColumns are the messages columns scanLocked reads.
const lockedColumns = `id, project_id, key_id, from_domain, tags, metadata, send_at, created_at,
	possibly_duplicated, attempts, event_seq`

// scanLocked scans lockedColumns.
func scanLocked(row interface{ Scan(...any) error }) (*lockedMessage, error) {
	m := &lockedMessage{suppressed: map[int]string{}, results: map[int]bool{}, outcomes: map[int]Outcome{}}
	d := &m.d
	var sendAt sql.NullInt64
	var created int64
	if err := row.Scan(&d.ID, &d.ProjectID, &d.KeyID, &d.FromDomain, &m.tags, &m.metadata, &sendAt, &created,
		&d.PossiblyDuplicated, &d.Attempts, &m.eventSeq); err != nil {
		return nil, err
	}
	d.SendAt, d.CreatedAt = timePtr(sendAt), fromMicros(created)
	return m, nil
}

// addRecipient appends a recipient read in position order, with the
// reason its address is suppressed (if reason is valid).
func (m *lockedMessage) addRecipient(rc DeliveryRecipient, reason sql.NullString) {
	m.d.Recipients = append(m.d.Recipients, rc)
	if reason.Valid {
		m.suppressed[rc.Position] = reason.String
	}
}

// snapshot is the Delivery as it stands, with its own recipients, tags
// and metadata.
func (m *lockedMessage) snapshot() (Delivery, error) {
	d := m.d
	d.Recipients = slices.Clone(m.d.Recipients)
	if err := json.Unmarshal([]byte(m.tags), &d.Tags); err != nil {
		return Delivery{}, fmt.Errorf("load delivery %s tags: %w", d.ID, err)
	}
	if err := json.Unmarshal([]byte(m.metadata), &d.Metadata); err != nil {
		return Delivery{}, fmt.Errorf("load delivery %s metadata: %w", d.ID, err)
	}
	return d, nil
}

// recipient is the recipient at position, or nil.
func (m *lockedMessage) recipient(position int) *DeliveryRecipient {
	for i := range m.d.Recipients {
		if m.d.Recipients[i].Position == position {
			return &m.d.Recipients[i]
		}
	}
	return nil
}

// set changes a recipient's status; result says an SMTP result
// (m.outcomes) comes with it. A result recorded by an earlier call of the
// group is still written when a later start changes the status again.
func (m *lockedMessage) set(rc *DeliveryRecipient, status string, result bool) {
	rc.Status = status
	m.changed = true
	m.results[rc.Position] = m.results[rc.Position] || result
}

// event appends an event numbered from the message's event_seq.
func (m *lockedMessage) event(recipient, typ string, data json.RawMessage) {
	m.changed = true
	m.eventSeq++
	text := "{}"
	if len(data) > 0 {
		text = string(data)
	}
	m.events = append(m.events, eventRow{projectID: m.d.ProjectID, messageID: m.d.ID, recipient: recipient,
		typ: typ, seq: m.eventSeq, data: text})
}

// status is the message status its recipients' statuses make.
func (m *lockedMessage) status() string {
	statuses := make([]string, len(m.d.Recipients))
	for i, rc := range m.d.Recipients {
		statuses[i] = rc.Status
	}
	return SummarizeStatus(statuses)
}

// changedIDs are the messages of the group that changed, in id order.
func (g *deliveryGroup) changedIDs() []string {
	var ids []string
	for id, m := range g.msgs {
		if m.changed {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// startIDs are the distinct messages ops start, whose payloads are read
// with the rows.
func startIDs(ops []deliveryOp) []string {
	var ids []string
	for _, op := range ops {
		if op.start != nil {
			ids = append(ids, op.start.id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// givePayloads hands each start that sends its message's payload.
func givePayloads(ops []deliveryOp, payloads map[string]Payload) {
	for _, op := range ops {
		if op.start != nil && len(op.start.out.Send) > 0 {
			op.start.d.Payload = payloads[op.start.id]
		}
	}
}

// anyPending reports whether a recipient may still be sent.
func anyPending(rs []DeliveryRecipient) bool {
	return slices.ContainsFunc(rs, func(r DeliveryRecipient) bool { return isPending(r.Status) })
}

func isPending(status string) bool {
	switch status {
	case StatusQueued, StatusScheduled, StatusDeferred, StatusSending:
		return true
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return cleanText(s)
}

// cleanText is s as both engines store text: valid UTF-8 without NUL
// (PostgreSQL refuses either in a text column). A relay's reply is
// whatever bytes the relay sent.
func cleanText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}
