package bounce

import (
	"bufio"
	"bytes"
	"strings"
)

// classifyARF recognises a feedback report: a message/feedback-report part
// (RFC 5965 §3), or Apple Mail's unsubscribe notice (X-Apple-Unsubscribe),
// which is an opt-out sent on the user's behalf.
func classifyARF(m *msg, r *Report) bool {
	if strings.EqualFold(strings.TrimSpace(m.h.Get("X-Apple-Unsubscribe")), "true") {
		r.Kind = KindComplaint
		r.FeedbackType = "opt-out"
		r.Results = append(r.Results, feedbackResult(headerAddress(m.h.Get("From"))))
		return true
	}
	p := m.t.first("message/feedback-report")
	if p == nil {
		return false
	}
	r.Kind = KindComplaint
	r.FeedbackType = "abuse" // RFC 5965 §3.1 requires the field; assume the common case
	if v := arfValues(p.body, "feedback-type"); len(v) > 0 && v[0] != "" {
		r.FeedbackType = strings.ToLower(v[0])
	}
	for _, rcpt := range arfRecipients(m, p.body) {
		r.Results = append(r.Results, feedbackResult(rcpt))
	}
	return true
}

// arfRecipients returns the complaining recipients: the Original-Rcpt-To
// fields (RFC 5965 §3.2) or Removal-Recipient (Microsoft's opt-out
// reports), else the To of the returned original.
func arfRecipients(m *msg, body []byte) []string {
	var out []string
	for _, v := range append(arfValues(body, "original-rcpt-to"), arfValues(body, "removal-recipient")...) {
		if a := cleanAddress(v); a != "" {
			out = append(out, a)
		}
	}
	if len(out) > 0 {
		return out
	}
	for _, a := range headerAddresses(m.origGet("To")) {
		if strings.Contains(a, "@") {
			return []string{a}
		}
	}
	return []string{""}
}

// arfValues returns every value of a field in an ARF report body, which
// may repeat fields (RFC 5965 §3.2: Original-Rcpt-To, Reported-URI).
func arfValues(body []byte, name string) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// feedbackResult is the result for one complaining recipient.
func feedbackResult(rcpt string) Result {
	return Result{Recipient: rcpt, Reason: ReasonFeedback, Rule: "arf"}
}
