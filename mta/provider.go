package mta

import (
	"bytes"
	"strings"
)

// Providers behind a relay (RelayConfig.Provider): the email services
// whose notifications (bounces, complaints, deliveries) can name the
// message by an id the sender puts in a header of the provider's own.
const (
	// ProviderNone adds no provider header: any other relay.
	ProviderNone = "none"
	// ProviderPostmark is Postmark's SMTP service (smtp.postmarkapp.com).
	ProviderPostmark = "postmark"
	// ProviderSendGrid is SendGrid's SMTP service (smtp.sendgrid.net).
	ProviderSendGrid = "sendgrid"
	// ProviderMailgun is Mailgun's SMTP service (smtp.mailgun.org,
	// smtp.eu.mailgun.org).
	ProviderMailgun = "mailgun"
)

// providerDomains maps each provider's domain to the provider: a relay
// host that is the domain or a name under it is that provider's.
var providerDomains = [...]struct{ domain, provider string }{
	{"postmarkapp.com", ProviderPostmark},
	{"sendgrid.net", ProviderSendGrid},
	{"mailgun.org", ProviderMailgun},
}

// providerOfHost is the provider whose SMTP service host is (by its
// domain, ignoring case and a final dot), else ProviderNone.
func providerOfHost(host string) string {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, d := range providerDomains {
		if host == d.domain || strings.HasSuffix(host, "."+d.domain) {
			return d.provider
		}
	}
	return ProviderNone
}

// validProvider reports whether p is a provider name RelayConfig takes.
func validProvider(p string) bool {
	switch p {
	case ProviderNone, ProviderPostmark, ProviderSendGrid, ProviderMailgun:
		return true
	}
	return false
}

// feedbackHeader is the header field (with its CRLF) that makes the
// relay's provider echo the message's mailgate id in its notifications,
// where package feedback reads it; nil when the relay is no provider's or
// the id is not a plain token (plainID), and for SendGrid when the
// message already has an X-SMTPAPI field.
//
//   - Postmark turns each X-PM-Metadata-KEY header of an SMTP message into
//     the metadata field KEY, returned as Metadata in its webhooks
//     (postmarkapp.com/support/article/1125-custom-metadata-faq); a key has
//     at most 20 characters and a value at most 80.
//   - SendGrid reads the JSON of the X-SMTPAPI header; its unique_args come
//     back as top-level fields of each event of the Event Webhook
//     (twilio.com/docs/sendgrid/for-developers/sending-email/unique-arguments).
//     SendGrid obeys the first X-SMTPAPI of a message only, so a message
//     whose custom headers carry one keeps it, and gets none from here.
//   - Mailgun reads the JSON map of X-Mailgun-Variables headers (several
//     are merged) and returns it as user-variables in its webhooks'
//     event-data (documentation.mailgun.com, "Attaching Metadata to
//     Messages"); Mailgun leaves the header in the delivered message.
//
// It is prepended to the signed message at send time, per relay, so a
// message that fails over goes to each relay with that relay's header. It
// is no field of the DKIM signature's h= list (it was not there when the
// message was signed), so the signature still verifies. The id is the one
// X-Mailgate-ID and Message-ID already carry: the header holds no secret.
func feedbackHeader(provider, id string, msg []byte) []byte {
	if provider == ProviderNone || provider == "" || !plainID(id) {
		return nil
	}
	var prefix, suffix string
	switch provider {
	case ProviderPostmark:
		prefix, suffix = "X-PM-Metadata-mailgate_id: ", "\r\n"
	case ProviderSendGrid:
		if hasField(msg, "X-SMTPAPI") {
			return nil
		}
		prefix, suffix = `X-SMTPAPI: {"unique_args":{"mailgate_id":"`, "\"}}\r\n"
	case ProviderMailgun:
		prefix, suffix = `X-Mailgun-Variables: {"mailgate_id":"`, "\"}\r\n"
	default:
		return nil
	}
	h := make([]byte, 0, len(prefix)+len(id)+len(suffix))
	return append(append(append(h, prefix...), id...), suffix...)
}

// plainID reports whether id is 1 to 80 characters of letters, digits,
// '.', '_' and '-' (a UUID is): text that needs no quoting in a header
// field or a JSON string, and fits Postmark's metadata value limit.
func plainID(id string) bool {
	if id == "" || len(id) > 80 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// hasField reports whether the header section of msg has a field named
// name (ignoring case), without allocating.
func hasField(msg []byte, name string) bool {
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			return false // the end of the header section
		}
		if len(line) > len(name) && line[len(name)] == ':' && strings.EqualFold(string(line[:len(name)]), name) {
			return true
		}
	}
	return false
}
