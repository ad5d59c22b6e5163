// Package bounce parses returned email — delivery status notifications,
// feedback-loop complaints, auto-replies and human replies — into a Report
// and classifies it.
//
// It owns the parsing and classification only: it does no I/O, keeps no
// state, and does not decide what a result means for suppression or events
// (package inbound does). It understands, in this order:
//
//   - RFC 3464 delivery status notifications (multipart/report with a
//     message/delivery-status part) and their RFC 6533 internationalised form
//     (message/global-delivery-status);
//   - RFC 5965 ARF feedback reports (message/feedback-report), and Apple's
//     one-click unsubscribe notice;
//   - the non-standard bounces of common MTAs and providers (Postfix, Exim,
//     Sendmail, qmail, Exchange/Office 365, Gmail, Yahoo, Domino and others),
//     recognised by heuristics over the human-readable text;
//   - RFC 3834 auto-replies and the common vendor auto-reply headers and
//     subjects;
//   - human replies, whose text is returned with the quoted history,
//     signature and mobile footers stripped.
//
// Anything else (newsletters, spam, forwards) is reported as kind "unknown".
//
// Status codes follow RFC 3463; reasons use the vocabulary documented in
// reasons.go (Sisimai's reason names, so that results compare with that
// classifier's labelled corpus). A reason is decided by the status code
// (its meaning by the status rules), the SMTP command that failed, and the
// phrase rules; both kinds of rule are the embedded file builtin.rules,
// read by New in the operator rule format (ParseRules; a " ... " in a
// pattern is a short gap, so a rule states a wording, not one sample's
// sentence), weighed in the
// precedence order of diagnosis.go: an explicit status such as X.1.1 with
// a phrase naming the same reason beats a generic refusal, and a phrase
// decides over the class-only status X.0.0. Operator rules override the
// built-in ones: a phrase rule the built-in decision, a status rule a
// code's built-in meaning. Every result names its rule (Result.Rule) and
// Report.Explain prints the decision path. Parser.Classify applies the
// same rules to a status and diagnostic reported outside a message (a
// provider's webhook). Hostile input is bounded by Limits: past
// MaxBytes the message is truncated, past MaxDepth a subtree is skipped,
// past MaxParts parsing stops; the report is made from what was read. Parse
// never panics.
//
// Report.JSON is the output of `mailgate inspect`.
package bounce
