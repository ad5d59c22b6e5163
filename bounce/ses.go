package bounce

import (
	"encoding/json"
	"strings"
)

// sesNotification is the part of an Amazon SES event notification
// (delivered by SNS as JSON in the mail body) that a report needs.
type sesNotification struct {
	NotificationType string `json:"notificationType"`
	EventType        string `json:"eventType"`
	Bounce           struct {
		BounceType        string `json:"bounceType"`
		ReportingMTA      string `json:"reportingMTA"`
		BouncedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			Action         string `json:"action"`
			Status         string `json:"status"`
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"bouncedRecipients"`
	} `json:"bounce"`
	Complaint struct {
		FeedbackType         string `json:"complaintFeedbackType"`
		ComplainedRecipients []struct {
			EmailAddress string `json:"emailAddress"`
		} `json:"complainedRecipients"`
	} `json:"complaint"`
	Delivery struct {
		Recipients   []string `json:"recipients"`
		SMTPResponse string   `json:"smtpResponse"`
	} `json:"delivery"`
}

// classifySES reads an Amazon SES bounce, complaint or delivery
// notification sent as JSON by e-mail (SNS envelope or bare).
func classifySES(m *msg, r *Report) bool {
	body := strings.TrimSpace(m.body)
	if !strings.HasPrefix(body, "{") || !strings.Contains(body, "notificationType") && !strings.Contains(body, "eventType") {
		return false
	}
	n, ok := decodeSES(body)
	if !ok {
		return false
	}
	typ := n.NotificationType
	if typ == "" {
		typ = n.EventType
	}
	switch typ {
	case "Bounce":
		return sesBounce(n, r)
	case "Complaint":
		r.Kind = KindComplaint
		r.FeedbackType = strings.ToLower(n.Complaint.FeedbackType)
		if r.FeedbackType == "" {
			r.FeedbackType = "abuse"
		}
		for _, c := range n.Complaint.ComplainedRecipients {
			r.Results = append(r.Results, feedbackResult(c.EmailAddress))
		}
		return true
	case "Delivery":
		r.Kind = KindDelivered
		for _, a := range n.Delivery.Recipients {
			x := Result{Recipient: a, Action: "delivered", Diagnostic: n.Delivery.SMTPResponse}
			finishResult(&x, "")
			r.Results = append(r.Results, x)
		}
		return true
	}
	return false
}

// decodeSES decodes the notification, unwrapping the SNS envelope whose
// "Message" field holds the notification as a JSON string.
func decodeSES(body string) (sesNotification, bool) {
	var env struct {
		Type    string `json:"Type"`
		Message string `json:"Message"`
	}
	var n sesNotification
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		// Lines past 990 octets arrive broken as "!" CRLF SP (RFC 5322
		// §2.1.1 limit enforced by the sender); join them and retry.
		body = strings.NewReplacer("!\r\n ", "", "!\n ", "").Replace(body)
		if err := json.Unmarshal([]byte(body), &env); err != nil {
			return n, false
		}
	}
	inner := body
	if env.Message != "" {
		inner = env.Message
	}
	if err := json.Unmarshal([]byte(inner), &n); err != nil {
		return n, false
	}
	return n, true
}

// sesBounce turns the bounced recipients into results.
func sesBounce(n sesNotification, r *Report) bool {
	for _, b := range n.Bounce.BouncedRecipients {
		x := Result{
			Recipient:  b.EmailAddress,
			Action:     normalizeAction(b.Action),
			Status:     findStatus(b.Status),
			Diagnostic: oneLine(typedValue(b.DiagnosticCode)),
			RemoteMTA:  typedValue(n.Bounce.ReportingMTA),
		}
		if x.Action == "" {
			x.Action = "failed"
		}
		finishResult(&x, "")
		r.Results = append(r.Results, x)
	}
	r.Kind = kindOf(r.Results)
	return len(r.Results) > 0
}
