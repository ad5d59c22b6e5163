package bounce

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestClassify checks the classification of a provider-reported failure
// from its status and diagnostic alone.
func TestClassify(t *testing.T) {
	p := New(Limits{})
	for _, c := range []struct {
		status, diag       string
		reason, wantStatus string
		hard               bool
		rule               string
		replyCode          int
	}{
		{"5.1.1", "smtp; 550 5.1.1 <x@y>: user unknown", ReasonUserUnknown, "5.1.1", true, "status:5.1.1", 550},
		{"", "smtp; 550 5.1.1 <x@y>: user unknown", ReasonUserUnknown, "5.1.1", true, "status:5.1.1", 550},
		{"", "452 4.2.2 Mailbox full", ReasonMailboxFull, "4.2.2", false, "status:4.2.2", 452},
		{"5.0.0", "550 Requested action not taken: mailbox unavailable", ReasonUserUnknown, "5.0.0", true,
			"diagnostic:userunknown:mailbox unavailable", 550},
		{"", "554 Message rejected: spam detected", ReasonSpamDetected, "5.0.0", false, "diagnostic:spamdetected:spam detected", 554},
		{"", "", ReasonUndefined, "5.0.0", false, "fallback:undefined", 0},
		{"4.4.7", "", ReasonExpired, "4.4.7", false, "status:4.4.7", 0},
	} {
		got := p.Classify(c.status, c.diag)
		if got.Reason != c.reason || got.Status != c.wantStatus || got.Hard != c.hard || got.Rule != c.rule ||
			got.ReplyCode != c.replyCode || got.Action != "failed" {
			t.Errorf("Classify(%q, %q) = %+v, want reason %s status %s hard %v rule %s reply %d",
				c.status, c.diag, got, c.reason, c.wantStatus, c.hard, c.rule, c.replyCode)
		}
	}
}

// TestClassifyPhraseScope checks that a phrase decides only what it
// states: a temporary refusal, a sender's rate limit or a refused client
// is no unknown user or full mailbox, and the status code's cause holds
// where the text names no clearer one.
func TestClassifyPhraseScope(t *testing.T) {
	p := New(Limits{})
	for _, c := range []struct {
		diag   string
		reason string
		hard   bool
	}{
		{"451 Temporary failure: mailbox is unavailable", ReasonSystemError, false},
		{"550 5.7.1 too many failures authenticating", ReasonSecurityError, false},
		{"451 4.3.0 <a@b.example>: Recipient address rejected: LDAP lookup failed for user entry", ReasonOnHold, false},
		{"450 4.2.0 <a@b.example>: mailbox is unavailable, try again later", ReasonOnHold, false},
		{"550 5.1.10 The recipient's mailbox is unavailable", ReasonUserUnknown, true},
		{"452 4.5.3 Too many bad recipients, closing connection", ReasonSystemError, false},
		{"550 5.7.1 This server no longer accepts mail from your IP address", ReasonBlocked, false},
		{"550 This address no longer accepts mail", ReasonUserUnknown, true},
		{"550 5.1.1 Administrative prohibition - unknown user", ReasonUserUnknown, true},
		{"550 5.1.1 Recipient rejected: dynamic IP not allowed", ReasonUserUnknown, true},
		{"550 5.1.1 <a@b.example>: Relay access denied", ReasonNoRelaying, false},
		{"452 4.3.1 Server does not have enough space", ReasonSystemFull, false},
		{"452 4.2.2 Mailbox does not have enough space", ReasonMailboxFull, false},
		{"451 4.7.1 Sending quota violation for this account", ReasonBlocked, false},
		{"451 4.7.1 You are exceeding your hourly message quota", ReasonBlocked, false},
		{"554 We do not accept spam", ReasonSpamDetected, false},
		{"421 4.4.2 timeout waiting for input", ReasonNetworkError, false},
		{"550 5.7.1 Message looks suspiciously like spam", ReasonSpamDetected, false},
		{"550 5.7.1 SPF authentication failed for sender domain", ReasonAuthFailure, false},
		{"535 5.7.8 Authentication failed", ReasonSecurityError, false},
		{"550 5.7.1 Your message requires confirmation", ReasonSecurityError, false},
		{"421 4.7.0 Too many connections from this IP", ReasonTooManyConn, false},
		{"550 5.2.1 <a@b.example>: Recipient address rejected: Account is closed", ReasonSuspend, false},
		{"552 Speicherplatz des Benutzers überschritten", ReasonMailboxFull, false},
		{"Too many failures (connect ECONNREFUSED 192.0.2.1:25)", ReasonExpired, false},
		{"Motivo: el buzón del destinatario está lleno", ReasonMailboxFull, false},
		{"550 Пользователь не найден", ReasonUserUnknown, true},
		{"原因：收件人邮箱已满", ReasonMailboxFull, false},
		{"Причина: почтовый ящик получателя переполнен", ReasonMailboxFull, false},
		{"Motivo: la casella di posta del destinatario è piena", ReasonMailboxFull, false},
		{"Raison : adresse inconnue", ReasonUserUnknown, true},
		{"550 le destinataire bob@b.example n'existe pas", ReasonUserUnknown, true},
		{"Reden: onbekende ontvanger", ReasonUserUnknown, true},
		{"550 Het adres bob@b.example bestaat niet", ReasonUserUnknown, true},
		{"理由: 宛先のメールアドレスは存在しません。", ReasonUserUnknown, true},
		{"550 指定されたユーザーは存在しません", ReasonUserUnknown, true},
		{"실패 사유: 받는 사람의 메일 주소가 존재하지 않습니다.", ReasonUserUnknown, true},
		{"550 사용자가 존재하지 않습니다", ReasonUserUnknown, true},
		{"退信原因：收件人邮箱地址不存在", ReasonUserUnknown, true},
		{"退信原因：收件人邮箱账号不存在", ReasonUserUnknown, true},
		{"退信原因：收件人邮箱域名不存在", ReasonHostUnknown, true},
		{"550 #5.1.0 Address rejected.", ReasonUserUnknown, true},
		{"554 DT:SPM 163 mx14,QMCowEB http://mail.163.com/help/help_spam_16.htm?ip=192.0.2.1", ReasonSpamDetected, false},
		{"Connection timed out with mx.b.example.", ReasonExpired, false},
		{"550 Envelope blocked - User Entry - https://mimecast.example/docs#550 (in reply to RCPT TO command)", ReasonFiltered, false},
		{"550 5.7.1 <a@b.example>: Message blocked by the recipient (in reply to RCPT TO command)", ReasonFiltered, false},
		{"550 <a@b.example>: User unknown (in reply to RCPT TO command)", ReasonUserUnknown, true},
		{"450 4.7.1 Requested mail action not taken: mailbox unavailable (greylisted, try again in 5 minutes)", ReasonBlocked, false},
		{"450 4.2.0 <a@b.example>: mailbox unavailable, greylisted (in reply to RCPT TO command)", ReasonBlocked, false},
		{"552 5.2.0 This message has been rejected due to content judged to be spam", ReasonSpamDetected, false},
		{"554 RCPT (a@b.example) is rejected: User in blacklist", ReasonFiltered, false},
		{"550 5.7.1 Sender is on the recipient's denylist", ReasonFiltered, false},
		{"550 5.7.1 Recipient doesn't want your mail", ReasonFiltered, false},
		{"Důvod: schránka příjemce je plná", ReasonMailboxFull, false},
		{"Powód: skrzynka odbiorcy jest przepełniona", ReasonMailboxFull, false},
		{"Причина: поштова скринька одержувача переповнена", ReasonMailboxFull, false},
		{"받는 사람의 메일함 용량이 초과되었습니다", ReasonMailboxFull, false},
		{"理由: 受信者のメールボックスの容量がいっぱいです", ReasonMailboxFull, false},
		{"原因：收件者信箱已滿", ReasonMailboxFull, false},
		{"Motivo: a caixa postal do destinatário está cheia", ReasonMailboxFull, false},
		{"Neden: Alıcının posta kutusu dolu", ReasonMailboxFull, false},
		{"Orsak: mottagarens brevlåda är full", ReasonMailboxFull, false},
		{"Motivo: la cuenta del destinatario está desactivada", ReasonSuspend, false},
		{"Motivo: a conta do destinatário foi suspensa", ReasonSuspend, false},
		{"Przyczyna: konto odbiorcy nie istnieje", ReasonUserUnknown, true},
		{"Důvod: uživatel neexistuje", ReasonUserUnknown, true},
		{"Důvod: schránka neexistuje", ReasonUserUnknown, true},
		{"Причина: такого пользователя не существует", ReasonUserUnknown, true},
		{"Motivo: indirizzo inesistente", ReasonUserUnknown, true},
		{"Reden: deze gebruiker is onbekend", ReasonUserUnknown, true},
		{"Причина: такого користувача не існує", ReasonUserUnknown, true},
		{"550 Ο χρήστης δεν υπάρχει", ReasonUserUnknown, true},
		{"550 Benutzer nicht gefunden", ReasonUserUnknown, true},
		{"Hata: 550 Kullanıcı bulunamadı", ReasonUserUnknown, true},
		{"Αιτία: ο λογαριασμός του παραλήπτη δεν υπάρχει", ReasonUserUnknown, true},
		{"錯誤原因：收件者帳號不存在", ReasonUserUnknown, true},
		{"Erro: usuário desconhecido", ReasonUserUnknown, true},
		{"553-you are trying to use me [mx.example] as a relay, but I have not 553-been configured to let you do this", ReasonNoRelaying, false},
		{"554 5.7.0 Reject, id=4711-01 - spam", ReasonSpamDetected, false},
		{"554 5.7.0 Reject, id=4711-02 - INFECTED: Eicar-Test-Signature", ReasonVirusDetected, false},
		{"550 5.7.1 Sender verification failed", ReasonRejected, false},
		{"550-Verification failed for <a@b.example> 550-Response: 550 5.1.1 <a@b.example>: User unknown 550 Sender verify failed", ReasonRejected, false},
		{"550-Callout verification failed: 550 550 5.1.1 <a@b.example>: Recipient address rejected: User unknown", ReasonUserUnknown, true},
	} {
		got := p.Classify("", c.diag)
		if got.Reason != c.reason || got.Hard != c.hard {
			t.Errorf("Classify(%q) = %s hard %v (rule %s), want %s hard %v", c.diag, got.Reason, got.Hard, got.Rule, c.reason, c.hard)
		}
	}
}

// TestClassifyOperatorRule checks that operator rules decide in Classify
// as they do for a parsed report.
func TestClassifyOperatorRule(t *testing.T) {
	rules, err := ParseRules([]byte("mailbox full => suspend hard site-full\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := New(Limits{}, rules...).Classify("4.2.2", "452 4.2.2 Mailbox full")
	if got.Reason != ReasonSuspend || !got.Hard || got.Rule != "site-full" || got.Status != "4.2.2" {
		t.Errorf("got %+v, want the operator rule site-full", got)
	}
}

// TestClassifyMatchesDSN checks that Classify decides as Parse does for a
// delivery status notification stating the same status and diagnostic,
// with a notice text that says nothing more.
func TestClassifyMatchesDSN(t *testing.T) {
	rules, err := ParseRules([]byte("over the limit => exceedlimit soft site-limit\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := New(Limits{}, rules...)
	for _, c := range []struct{ status, diag string }{
		{"5.1.1", "smtp; 550 5.1.1 <gone@example.org>: User unknown"},
		{"5.0.0", "smtp; 550 Requested action not taken: mailbox unavailable"},
		{"4.0.0", "smtp; 421 Too many connections from your IP"},
		{"5.7.1", "smtp; 554 5.7.1 Service unavailable; client host [192.0.2.1] blocked using zen.spamhaus.org"},
		{"5.2.2", "smtp; 552 5.2.2 Quota exceeded"},
		{"5.0.0", "smtp; 550 over the limit"},
		{"5.7.1", "smtp; 550 5.7.1 Relaying denied"},
		{"", "smtp; 550 Message was not accepted -- invalid mailbox"},
	} {
		raw := fmt.Sprintf("From: MAILER-DAEMON@mx.example.net\nTo: bounces@example.com\nSubject: Delivery Status Notification\n"+
			"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"+
			"--b\nContent-Type: text/plain\n\nReport.\n\n--b\nContent-Type: message/delivery-status\n\n"+
			"Reporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822; r@example.org\nAction: failed\n"+
			"Status: %s\nDiagnostic-Code: %s\n\n--b--\n", c.status, c.diag)
		rep, err := p.Parse([]byte(raw))
		if err != nil || len(rep.Results) != 1 {
			t.Fatalf("Parse: %v, %d results", err, len(rep.Results))
		}
		want := rep.Results[0]
		got := p.Classify(c.status, c.diag)
		if got.Reason != want.Reason || got.Hard != want.Hard || got.Rule != want.Rule || got.Status != want.Status ||
			got.ReplyCode != want.ReplyCode || got.Diagnostic != want.Diagnostic {
			t.Errorf("Classify(%q, %q) = %s/%v/%s/%s, DSN path %s/%v/%s/%s", c.status, c.diag,
				got.Reason, got.Hard, got.Rule, got.Status, want.Reason, want.Hard, want.Rule, want.Status)
		}
	}
}

// TestClassifyLongDiagnostic: a provider's diagnostic of megabytes is read
// only up to maxDiagnostic, so its cost is bounded, and the cut does not
// split a UTF-8 sequence.
func TestClassifyLongDiagnostic(t *testing.T) {
	p := New(Limits{})
	diag := "smtp; 550 5.1.1 user unknown " + strings.Repeat("é", 4<<20)
	r := p.Classify("", diag)
	if len(r.Diagnostic) > maxDiagnostic || !utf8.ValidString(r.Diagnostic) {
		t.Fatalf("diagnostic of %d bytes (valid UTF-8 %v), want at most %d", len(r.Diagnostic), utf8.ValidString(r.Diagnostic), maxDiagnostic)
	}
	if r.Reason != ReasonUserUnknown || !r.Hard {
		t.Errorf("reason %q hard %v, want userunknown hard", r.Reason, r.Hard)
	}
}

// TestClassifyDomainNotUser: a wording that says the domain of a user,
// account or recipient does not exist names no unknown user, though the
// user's word and "does not exist" both occur in it.
func TestClassifyDomainNotUser(t *testing.T) {
	p := New(Limits{})
	for _, diag := range []string{
		"Причина: домен пользователя не существует",
		"Důvod: doména uživatele neexistuje",
		"Przyczyna: domena użytkownika nie istnieje",
		"Erro: o domínio do usuário não existe",
		"Reden: het domein van de gebruiker bestaat niet",
		"Grund: die Domain des Benutzers existiert nicht",
		"Hata: kullanıcının alan adı bulunamadı",
		"Αιτία: ο τομέας του παραλήπτη δεν υπάρχει",
		"Motivo: il dominio dell'indirizzo non esiste",
		"Причина: домен користувача не існує",
		"554 5.7.1 IP-adres 192.0.2.1 bestaat niet in DNS (geen PTR)",
		"451 4.4.3 Le serveur du destinataire n'existe pas dans le DNS",
		"421 4.4.0 ユーザーのメールサーバが存在しません。後で再試行してください",
		"451 4.3.0 사용자 인증 서버가 존재하지 않습니다",
	} {
		if r := p.Classify("", diag); r.Reason == ReasonUserUnknown {
			t.Errorf("Classify(%q) = %s (rule %s), want anything but userunknown", diag, r.Reason, r.Rule)
		}
	}
}

// TestClassifyOtherSubjectCode: a status code about another subject than
// the recipient's mailbox (the domain, the sender, the client's PTR, the
// route) keeps its meaning when the text speaks of an address or a user
// not existing.
func TestClassifyOtherSubjectCode(t *testing.T) {
	p := New(Limits{})
	for _, c := range []struct{ diag, reason string }{
		{"451 4.7.25 Het IP-adres 192.0.2.1 heeft geen PTR; de naam bestaat niet", ReasonRequirePTR},
		{"550 5.1.7 Het afzenderadres bestaat niet", ReasonRejected},
		{"550 5.1.8 Expéditeur rejeté: adresse inconnue", ReasonRejected},
		{"550 5.1.2 le domaine du destinataire n'existe pas", ReasonHostUnknown},
		{"550 5.1.2 宛先アドレスのドメインが存在しません", ReasonHostUnknown},
		{"550 5.1.2 받는 사람 주소의 도메인이 존재하지 않습니다", ReasonHostUnknown},
		{"550 5.1.2 Het domein van het adres bestaat niet", ReasonHostUnknown},
		{"550 5.1.8 Sender address rejected: user unknown", ReasonRejected},
	} {
		if r := p.Classify("", c.diag); r.Reason != c.reason {
			t.Errorf("Classify(%q) = %s (rule %s), want %s", c.diag, r.Reason, r.Rule, c.reason)
		}
	}
}

// TestClassifyDomainExists: a domain said to exist is not an unknown host.
func TestClassifyDomainExists(t *testing.T) {
	r := New(Limits{}).Classify("", "550 domain example.org exists, but the recipient is not accepted here")
	if r.Reason == ReasonHostUnknown {
		t.Errorf("reason %q (rule %s), want anything but hostunknown", r.Reason, r.Rule)
	}
}
