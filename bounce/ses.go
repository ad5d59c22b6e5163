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
		BounceSubType     string `json:"bounceSubType"`
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
	Mail struct {
		Source  string `json:"source"`
		Headers []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"headers"`
		CommonHeaders struct {
			MessageID string `json:"messageId"`
		} `json:"commonHeaders"`
	} `json:"mail"`
	DeliveryDelay struct {
		DelayType         string `json:"delayType"`
		DelayedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			Status         string `json:"status"`
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"delayedRecipients"`
	} `json:"deliveryDelay"`
}

// maxSESLead is how far into the body the notification's JSON may start.
const maxSESLead = 1024

// classifySES reads an Amazon SES bounce, complaint, delivery or delivery
// delay notification sent as JSON by e-mail: the SNS "email-json"
// envelope, or the bare notification of an SNS "email" subscription,
// which SNS follows with an unsubscribe footer.
func classifySES(m *msg, r *Report) bool {
	body := strings.TrimSpace(m.body)
	i := strings.IndexByte(body, '{')
	if i < 0 || i > maxSESLead || !strings.Contains(body, "notificationType") && !strings.Contains(body, "eventType") {
		return false
	}
	n, ok := decodeSES(body[i:])
	if !ok {
		return false
	}
	sesRefs(n, &r.Refs)
	typ := n.NotificationType
	if typ == "" {
		typ = n.EventType
	}
	switch typ {
	case "Bounce":
		return sesBounce(n, r, m.tbl)
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
	case "DeliveryDelay":
		for _, d := range n.DeliveryDelay.DelayedRecipients {
			x := statedResult("delayed", d.Status, d.DiagnosticCode)
			x.Recipient = d.EmailAddress
			finishResult(&x, "", m.tbl)
			r.Results = append(r.Results, x)
		}
		r.Kind = KindDelayed
		return len(r.Results) > 0
	case "Delivery":
		r.Kind = KindDelivered
		for _, a := range n.Delivery.Recipients {
			x := Result{Recipient: a, Action: "delivered", Diagnostic: n.Delivery.SMTPResponse}
			finishResult(&x, "", m.tbl)
			r.Results = append(r.Results, x)
		}
		return true
	}
	return false
}

// decodeSES decodes the notification at the start of body (text after
// the JSON value, such as SNS's unsubscribe footer, is ignored),
// unwrapping the SNS envelope whose "Message" field holds the notification
// as a JSON string.
func decodeSES(body string) (sesNotification, bool) {
	var env struct {
		Type    string `json:"Type"`
		Message string `json:"Message"`
	}
	var n sesNotification
	if !decodeFirst(body, &env) {
		// Lines past 990 octets arrive broken as "!" CRLF SP (RFC 5322
		// §2.1.1 limit enforced by the sender); join them and retry.
		body = strings.NewReplacer("!\r\n ", "", "!\n ", "").Replace(body)
		if !decodeFirst(body, &env) {
			return n, false
		}
	}
	inner := body
	if env.Message != "" {
		inner = env.Message
	}
	return n, decodeFirst(inner, &n)
}

// decodeFirst decodes the first JSON value of text into v.
func decodeFirst(text string, v any) bool {
	return json.NewDecoder(strings.NewReader(text)).Decode(v) == nil
}

// sesBounce turns the bounced recipients into results.
func sesBounce(n sesNotification, r *Report, tbl *ruleTable) bool {
	for _, b := range n.Bounce.BouncedRecipients {
		x := statedResult(normalizeAction(b.Action), b.Status, b.DiagnosticCode)
		x.Recipient, x.RemoteMTA = b.EmailAddress, typedValue(n.Bounce.ReportingMTA)
		if x.Action == "" {
			x.Action = "failed"
		}
		if x.Status == "" && x.ReplyCode == 0 && n.Bounce.BounceType == "Transient" && findStatus(x.Diagnostic) == "" {
			x.Status = "4.0.0" // SES's verdict: a temporary failure
		}
		finishResult(&x, "", tbl)
		if x.Reason == ReasonUndefined || x.Reason == ReasonOnHold {
			sesSubType(&x, n.Bounce.BounceSubType)
		}
		r.Results = append(r.Results, x)
	}
	r.Kind = kindOf(r.Results)
	return len(r.Results) > 0
}

// sesSubTypeReasons maps the bounce subtypes of Amazon SES's notification
// contents (bounceType Permanent or Transient) that name a cause to
// reasons. General and Undetermined name none. Suppressed and
// OnAccountSuppressionList: SES refused an address it holds invalid.
var sesSubTypeReasons = map[string]string{
	"NoEmail": ReasonUserUnknown, "Suppressed": ReasonUserUnknown, "OnAccountSuppressionList": ReasonUserUnknown,
	"MailboxFull": ReasonMailboxFull, "MessageTooLarge": ReasonMesgTooBig, "ContentRejected": ReasonContentError,
	"AttachmentRejected": ReasonContentError,
}

// sesSubType decides a result that neither the status nor the diagnostic
// explained from SES's bounce subtype, SES having read the remote answer.
func sesSubType(x *Result, subType string) {
	reason, ok := sesSubTypeReasons[subType]
	if !ok {
		return
	}
	x.Reason, x.Rule, x.Overrides = reason, "ses:"+subType, ""
	x.Hard = IsHard(x.Reason, x.Status)
}

// sesRefs fills what the report points at from the notification's "mail"
// object, where the headers of the report itself name nothing: the VERP
// token of the envelope sender ("source", the MAIL FROM of the original),
// and the original's X-Mailgate-ID and Message-ID (from "headers", else
// "commonHeaders").
func sesRefs(n sesNotification, refs *Refs) {
	if refs.VERPToken == "" {
		refs.VERPToken = verpFrom(n.Mail.Source)
	}
	for _, h := range n.Mail.Headers {
		switch {
		case refs.MailgateID == "" && strings.EqualFold(h.Name, "X-Mailgate-ID"):
			refs.MailgateID = strings.TrimSpace(h.Value)
		case refs.OriginalMessageID == "" && strings.EqualFold(h.Name, "Message-ID"):
			refs.OriginalMessageID = firstMsgID(h.Value)
		}
	}
	if refs.OriginalMessageID == "" {
		refs.OriginalMessageID = firstMsgID(n.Mail.CommonHeaders.MessageID)
	}
}
