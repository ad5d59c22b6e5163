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
		// the four reasons in each language of the phrase table: an unknown
		// user (hard), a full mailbox, a disabled account (soft), a missing
		// domain (hard), with no status code as regional providers write them
		{"Grund: Empfänger unbekannt", ReasonUserUnknown, true},
		{"Grund: Das Postfach ist überfüllt", ReasonMailboxFull, false},
		{"Grund: Das Konto wurde gesperrt", ReasonSuspend, false},
		{"Grund: Die Domain existiert nicht", ReasonHostUnknown, true},
		{"Reden: de mailbox bestaat niet", ReasonUserUnknown, true},
		{"Reden: de mailbox van de ontvanger zit vol", ReasonMailboxFull, false},
		{"Reden: het account is geblokkeerd", ReasonSuspend, false},
		{"Reden: het domein bestaat niet", ReasonHostUnknown, true},
		{"Raison : utilisateur introuvable", ReasonUserUnknown, true},
		{"Raison : la boîte aux lettres du destinataire est pleine", ReasonMailboxFull, false},
		{"Raison : le compte a été désactivé", ReasonSuspend, false},
		{"Raison : le domaine n'existe pas", ReasonHostUnknown, true},
		{"Motivo: destinatario sconosciuto", ReasonUserUnknown, true},
		{"Motivo: account sospeso", ReasonSuspend, false},
		{"Motivo: il dominio non esiste", ReasonHostUnknown, true},
		{"Motivo: usuario desconocido", ReasonUserUnknown, true},
		{"Motivo: no existe el buzón solicitado", ReasonUserUnknown, true},
		{"Motivo: la bandeja de entrada está llena", ReasonMailboxFull, false},
		{"Motivo: la cuenta está inactiva", ReasonSuspend, false},
		{"Motivo: el dominio no existe", ReasonHostUnknown, true},
		{"Erro: destinatário desconhecido", ReasonUserUnknown, true},
		{"Erro: caixa postal lotada", ReasonMailboxFull, false},
		{"Erro: a conta está bloqueada", ReasonSuspend, false},
		{"Erro: o domínio não existe", ReasonHostUnknown, true},
		{"Powód: nieznany odbiorca", ReasonUserUnknown, true},
		{"Powód: brak miejsca w skrzynce odbiorcy", ReasonMailboxFull, false},
		{"Powód: konto odbiorcy jest wyłączone", ReasonSuspend, false},
		{"Powód: domena nie istnieje", ReasonHostUnknown, true},
		{"Důvod: neznámý příjemce", ReasonUserUnknown, true},
		{"Důvod: schránka je přeplněná", ReasonMailboxFull, false},
		{"Důvod: účet byl zablokován", ReasonSuspend, false},
		{"Důvod: doména neexistuje", ReasonHostUnknown, true},
		{"Dôvod: používateľ neexistuje", ReasonUserUnknown, true},
		{"Dôvod: schránka je preplnená", ReasonMailboxFull, false},
		{"Dôvod: účet bol zablokovaný", ReasonSuspend, false},
		{"Razlog: uporabnik ne obstaja", ReasonUserUnknown, true},
		{"Razlog: nabiralnik je poln", ReasonMailboxFull, false},
		{"Razlog: račun je onemogočen", ReasonSuspend, false},
		{"Razlog: domena ne obstaja", ReasonHostUnknown, true},
		{"Razlog: primatelj ne postoji", ReasonUserUnknown, true},
		{"Razlog: poštanski sandučić je pun", ReasonMailboxFull, false},
		{"Razlog: račun je onemogućen", ReasonSuspend, false},
		{"Razlog: domena ne postoji", ReasonHostUnknown, true},
		{"Razlog: korisnik ne postoji", ReasonUserUnknown, true},
		{"Razlog: poštansko sanduče je puno", ReasonMailboxFull, false},
		{"Razlog: nalog je suspendovan", ReasonSuspend, false},
		{"Razlog: domen ne postoji", ReasonHostUnknown, true},
		{"Разлог: корисник не постоји", ReasonUserUnknown, true},
		{"Разлог: поштанско сандуче је пуно", ReasonMailboxFull, false},
		{"Разлог: налог је деактивиран", ReasonSuspend, false},
		{"Разлог: домен не постоји", ReasonHostUnknown, true},
		{"Причина: получатель не найден", ReasonUserUnknown, true},
		{"Причина: почтовый ящик заполнен", ReasonMailboxFull, false},
		{"Причина: учётная запись заблокирована", ReasonSuspend, false},
		{"Причина: домен не существует", ReasonHostUnknown, true},
		{"Причина: невідомий одержувач", ReasonUserUnknown, true},
		{"Причина: обліковий запис заблоковано", ReasonSuspend, false},
		{"Причина: домен не існує", ReasonHostUnknown, true},
		{"Причина: потребителят не съществува", ReasonUserUnknown, true},
		{"Причина: пощенската кутия е пълна", ReasonMailboxFull, false},
		{"Причина: акаунтът е деактивиран", ReasonSuspend, false},
		{"Причина: домейнът не съществува", ReasonHostUnknown, true},
		{"Årsag: ukendt modtager", ReasonUserUnknown, true},
		{"Årsag: postkassen er fuld", ReasonMailboxFull, false},
		{"Årsag: kontoen er blevet deaktiveret", ReasonSuspend, false},
		{"Årsag: domænet findes ikke", ReasonHostUnknown, true},
		{"Årsak: ukjent mottaker", ReasonUserUnknown, true},
		{"Årsak: postkassen er full", ReasonMailboxFull, false},
		{"Årsak: kontoen er stengt", ReasonSuspend, false},
		{"Årsak: domenet finnes ikke", ReasonHostUnknown, true},
		{"Orsak: okänd mottagare", ReasonUserUnknown, true},
		{"Orsak: postlådan är full", ReasonMailboxFull, false},
		{"Orsak: kontot är avstängt", ReasonSuspend, false},
		{"Orsak: domänen finns inte", ReasonHostUnknown, true},
		{"Ástæða: notandinn er ekki til", ReasonUserUnknown, true},
		{"Ástæða: pósthólfið er fullt", ReasonMailboxFull, false},
		{"Ástæða: aðgangurinn er óvirkur", ReasonSuspend, false},
		{"Ástæða: lénið er ekki til", ReasonHostUnknown, true},
		{"Syy: käyttäjää ei ole olemassa", ReasonUserUnknown, true},
		{"Syy: vastaanottajan postilaatikko on täynnä", ReasonMailboxFull, false},
		{"Syy: käyttäjätili on suljettu", ReasonSuspend, false},
		{"Syy: verkkotunnusta ei ole olemassa", ReasonHostUnknown, true},
		{"Põhjus: kasutajat ei ole olemas", ReasonUserUnknown, true},
		{"Põhjus: postkast on täis", ReasonMailboxFull, false},
		{"Põhjus: konto on suletud", ReasonSuspend, false},
		{"Põhjus: domeeni ei ole olemas", ReasonHostUnknown, true},
		{"Iemesls: lietotājs neeksistē", ReasonUserUnknown, true},
		{"Iemesls: pastkastīte ir pilna", ReasonMailboxFull, false},
		{"Iemesls: konts ir bloķēts", ReasonSuspend, false},
		{"Iemesls: domēns neeksistē", ReasonHostUnknown, true},
		{"Priežastis: vartotojas neegzistuoja", ReasonUserUnknown, true},
		{"Priežastis: pašto dėžutė pilna", ReasonMailboxFull, false},
		{"Priežastis: paskyra užblokuota", ReasonSuspend, false},
		{"Priežastis: domenas neegzistuoja", ReasonHostUnknown, true},
		{"Ok: a címzett nem létezik", ReasonUserUnknown, true},
		{"Ok: a postafiók megtelt", ReasonMailboxFull, false},
		{"Ok: a fiók le van tiltva", ReasonSuspend, false},
		{"Ok: a domain nem létezik", ReasonHostUnknown, true},
		{"Motiv: utilizatorul nu există", ReasonUserUnknown, true},
		{"Motiv: căsuța poștală este plină", ReasonMailboxFull, false},
		{"Motiv: contul a fost suspendat", ReasonSuspend, false},
		{"Motiv: domeniul nu există", ReasonHostUnknown, true},
		{"Αιτία: άγνωστος παραλήπτης", ReasonUserUnknown, true},
		{"Αιτία: το γραμματοκιβώτιο είναι γεμάτο", ReasonMailboxFull, false},
		{"Αιτία: ο λογαριασμός έχει απενεργοποιηθεί", ReasonSuspend, false},
		{"Αιτία: ο τομέας δεν υπάρχει", ReasonHostUnknown, true},
		{"Hata: alıcı bulunamadı", ReasonUserUnknown, true},
		{"Hata: gelen kutusu dolu", ReasonMailboxFull, false},
		{"Hata: hesap askıya alındı", ReasonSuspend, false},
		{"Hata: alan adı mevcut değil", ReasonHostUnknown, true},
		{"Motiu: usuari desconegut", ReasonUserUnknown, true},
		{"Motiu: la bústia és plena", ReasonMailboxFull, false},
		{"Motiu: el compte està desactivat", ReasonSuspend, false},
		{"Motiu: el domini no existeix", ReasonHostUnknown, true},
		{"Motivo: usuario descoñecido", ReasonUserUnknown, true},
		{"Motivo: a caixa de correo está chea", ReasonMailboxFull, false},
		{"Motivo: a conta está desactivada", ReasonSuspend, false},
		{"Motivo: o dominio non existe", ReasonHostUnknown, true},
		{"Lý do: địa chỉ email không tồn tại", ReasonUserUnknown, true},
		{"Lý do: hộp thư đã đầy", ReasonMailboxFull, false},
		{"Lý do: tài khoản đã bị khóa", ReasonSuspend, false},
		{"Lý do: tên miền không tồn tại", ReasonHostUnknown, true},
		{"สาเหตุ: ไม่พบผู้รับ", ReasonUserUnknown, true},
		{"สาเหตุ: กล่องจดหมายของผู้รับเต็ม", ReasonMailboxFull, false},
		{"สาเหตุ: บัญชีถูกระงับ", ReasonSuspend, false},
		{"สาเหตุ: ไม่พบโดเมน", ReasonHostUnknown, true},
		{"Alasan: kotak surat tidak ditemukan", ReasonUserUnknown, true},
		{"Alasan: kotak masuk sudah penuh", ReasonMailboxFull, false},
		{"Alasan: akun telah dinonaktifkan", ReasonSuspend, false},
		{"Alasan: domain tidak ditemukan", ReasonHostUnknown, true},
		{"Sebab: akaun tidak wujud", ReasonUserUnknown, true},
		{"Sebab: peti mel penuh", ReasonMailboxFull, false},
		{"Sebab: akaun digantung", ReasonSuspend, false},
		{"Sebab: domain tidak wujud", ReasonHostUnknown, true},
		{"Dahilan: hindi umiiral ang user", ReasonUserUnknown, true},
		{"Dahilan: puno na ang mailbox", ReasonMailboxFull, false},
		{"Dahilan: na-disable ang account", ReasonSuspend, false},
		{"Dahilan: hindi umiiral ang domain", ReasonHostUnknown, true},
		{"סיבה: תיבת הדואר אינה קיימת", ReasonUserUnknown, true},
		{"סיבה: תיבת הדואר של הנמען מלאה", ReasonMailboxFull, false},
		{"סיבה: החשבון הושעה", ReasonSuspend, false},
		{"סיבה: הדומיין אינו קיים", ReasonHostUnknown, true},
		{"السبب: لا يوجد مستخدم بهذا الاسم", ReasonUserUnknown, true},
		{"السبب: صندوق البريد ممتلئ", ReasonMailboxFull, false},
		{"السبب: تم تعطيل الحساب", ReasonSuspend, false},
		{"السبب: النطاق غير موجود", ReasonHostUnknown, true},
		{"علت: چنین کاربری وجود ندارد", ReasonUserUnknown, true},
		{"علت: صندوق پستی گیرنده پر است", ReasonMailboxFull, false},
		{"علت: حساب کاربری غیرفعال شده است", ReasonSuspend, false},
		{"علت: دامنه وجود ندارد", ReasonHostUnknown, true},
		{"कारण: उपयोगकर्ता मौजूद नहीं है", ReasonUserUnknown, true},
		{"कारण: प्राप्तकर्ता का मेलबॉक्स भर गया है", ReasonMailboxFull, false},
		{"कारण: खाता निलंबित कर दिया गया है", ReasonSuspend, false},
		{"कारण: डोमेन मौजूद नहीं है", ReasonHostUnknown, true},
		{"退信原因：收件人不存在", ReasonUserUnknown, true},
		{"退信原因：收件人邮箱空间不足", ReasonMailboxFull, false},
		{"退信原因：收件人账号已冻结", ReasonSuspend, false},
		{"錯誤原因：收件者不存在", ReasonUserUnknown, true},
		{"錯誤原因：收件者信箱空間不足", ReasonMailboxFull, false},
		{"錯誤原因：收件者帳號已被停用", ReasonSuspend, false},
		{"錯誤原因：網域不存在", ReasonHostUnknown, true},
		{"理由: ユーザが見つかりません", ReasonUserUnknown, true},
		{"理由: 指定されたユーザーは存在しない", ReasonUserUnknown, true},
		{"理由: メールボックスが満杯です", ReasonMailboxFull, false},
		{"理由: アカウントが停止されています", ReasonSuspend, false},
		{"理由: ドメインが存在しません", ReasonHostUnknown, true},
		{"실패 사유: 받는 사람을 찾을 수 없습니다", ReasonUserUnknown, true},
		{"실패 사유: 사서함이 가득 찼습니다", ReasonMailboxFull, false},
		{"실패 사유: 휴면 계정입니다", ReasonSuspend, false},
		{"실패 사유: 도메인이 존재하지 않습니다", ReasonHostUnknown, true},
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
		"エラー: 接続元のIPアドレスが存在しません (逆引き)",
		"오류: 보낸 서버의 IP 주소가 존재하지 않습니다",
		// the domain, the sender, the server or an IP address said not to
		// exist, in each language of the phrase table
		"Grund: Die Domain des Empfängers existiert nicht",
		"Grund: Die IP-Adresse existiert nicht",
		"Grund: Die E-Mail-Adresse des Absenders existiert nicht",
		"Raison : le domaine de l'utilisateur n'existe pas",
		"Raison : l'adresse de l'expéditeur est introuvable",
		"Motivo: il dominio dell'utente non esiste",
		"Motivo: l'indirizzo del mittente non esiste",
		"Motivo: el dominio del usuario no existe",
		"Motivo: la dirección del remitente no existe",
		"Motivo: la dirección IP no existe",
		"Motivo: el servidor del destinatario no existe",
		"Erro: o endereço do remetente não existe",
		"Powód: adres nadawcy nie istnieje",
		"Powód: serwer odbiorcy nie istnieje",
		"Důvod: adresa odesílatele neexistuje",
		"Dôvod: doména používateľa neexistuje",
		"Dôvod: server príjemcu neexistuje",
		"Razlog: domena uporabnika ne obstaja",
		"Razlog: strežnik prejemnika ne obstaja",
		"Razlog: domena primatelja ne postoji",
		"Razlog: adresa pošiljatelja ne postoji",
		"Razlog: domen korisnika ne postoji",
		"Razlog: IP adresa ne postoji",
		"Разлог: домен корисника не постоји",
		"Разлог: адреса пошиљаоца не постоји",
		"Причина: адрес отправителя не существует",
		"Причина: сервер получателя не найден",
		"Причина: адреса відправника не існує",
		"Причина: сервер одержувача не існує",
		"Причина: домейнът на потребителя не съществува",
		"Причина: адресът на подателя не съществува",
		"Причина: сървърът на получателя не съществува",
		"Årsag: domænet for brugeren findes ikke",
		"Årsag: afsenderens adresse findes ikke",
		"Årsag: IP-adressen findes ikke",
		"Årsak: domenet til brukeren finnes ikke",
		"Årsak: avsenderens adresse finnes ikke",
		"Orsak: domänen för användaren finns inte",
		"Orsak: mottagarens server finns inte",
		"Ástæða: lén notandans er ekki til",
		"Ástæða: netfang sendanda er ekki til",
		"Syy: käyttäjän verkkotunnusta ei ole olemassa",
		"Syy: lähettäjän osoitetta ei ole olemassa",
		"Syy: vastaanottajan palvelinta ei löydy",
		"Põhjus: kasutaja domeeni ei ole olemas",
		"Põhjus: saatja aadressi ei leitud",
		"Iemesls: lietotāja domēns neeksistē",
		"Iemesls: sūtītāja adrese neeksistē",
		"Priežastis: vartotojo domenas neegzistuoja",
		"Priežastis: gavėjo serveris nerastas",
		"Ok: a felhasználó domainje nem létezik",
		"Ok: a feladó címe nem létezik",
		"Ok: a címzett szervere nem létezik",
		"Motiv: domeniul utilizatorului nu există",
		"Motiv: adresa expeditorului nu există",
		"Motiv: serverul destinatarului nu există",
		"Αιτία: η διεύθυνση του αποστολέα δεν υπάρχει",
		"Αιτία: ο διακομιστής του παραλήπτη δεν υπάρχει",
		"Hata: alıcının sunucusu bulunamadı",
		"Hata: gönderenin adresi mevcut değil",
		"Motiu: el domini de l'usuari no existeix",
		"Motiu: l'adreça del remitent no existeix",
		"Motiu: l'adreça IP no existeix",
		"Motivo: o dominio do usuario non existe",
		"Motivo: o enderezo do remitente non existe",
		"Lý do: tên miền của người dùng không tồn tại",
		"Lý do: máy chủ của người nhận không tồn tại",
		"Lý do: địa chỉ IP không tồn tại",
		"สาเหตุ: โดเมนของผู้ใช้ไม่มีอยู่",
		"สาเหตุ: ไม่พบเซิร์ฟเวอร์ของผู้รับ",
		"Alasan: domain pengguna tidak ditemukan",
		"Alasan: alamat pengirim tidak ditemukan",
		"Sebab: domain pengguna tidak wujud",
		"Dahilan: hindi umiiral ang address ng sender",
		"סיבה: הדומיין של המשתמש אינו קיים",
		"סיבה: כתובת השולח אינה קיימת",
		"סיבה: השרת של הנמען אינו קיים",
		"السبب: نطاق المستخدم غير موجود",
		"السبب: عنوان المرسل غير موجود",
		"السبب: خادم المستلم غير موجود",
		"علت: دامنه کاربر وجود ندارد",
		"علت: آدرس فرستنده وجود ندارد",
		"علت: سرور گیرنده وجود ندارد",
		"कारण: उपयोगकर्ता का डोमेन मौजूद नहीं है",
		"कारण: प्रेषक का पता मौजूद नहीं है",
		"कारण: प्राप्तकर्ता का सर्वर मौजूद नहीं है",
		"退信原因：收件人服务器不存在",
		"退信原因：IP地址不存在",
		"錯誤原因：收件者伺服器不存在",
		"理由: 宛先のメールサーバが見つかりません",
		"理由: ユーザーのドメインが存在しません",
		"실패 사유: 받는 사람의 서버를 찾을 수 없습니다",
		"실패 사유: 사용자 도메인을 찾을 수 없습니다",
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
		{"550 5.1.2 Domænet for modtageren findes ikke", ReasonHostUnknown},
		{"550 5.1.7 Avsändarens adress finns inte", ReasonRejected},
		{"550 5.1.2 Käyttäjän verkkotunnusta ei löydy", ReasonHostUnknown},
		{"550 5.1.2 A címzett domainje nem létezik", ReasonHostUnknown},
		{"550 5.1.7 Adresa expeditorului nu există", ReasonRejected},
		{"550 5.1.2 Tên miền của người nhận không tồn tại", ReasonHostUnknown},
		{"550 5.1.2 Domain penerima tidak ditemukan", ReasonHostUnknown},
		{"550 5.1.8 عنوان المرسل غير موجود", ReasonRejected},
		{"550 5.1.2 הדומיין של הנמען אינו קיים", ReasonHostUnknown},
		{"550 5.1.2 Domena odbiorcy nie istnieje", ReasonHostUnknown},
		{"550 5.1.7 发件人地址不存在", ReasonRejected},
		{"451 4.7.25 Adresa IP nu există în DNS (fără PTR)", ReasonRequirePTR},
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

// TestClassifyPhraseAlone: each built-in phrase of the four reasons that
// decide hard/soft and suppression (an unknown user or domain, a full
// mailbox, a disabled account), its gaps filled by a word, names its
// reason as the whole of a diagnostic given in answer to RCPT TO; the
// traps of TestClassifyDomainNotUser and TestClassifyOtherSubjectCode
// check the other way, that no phrase reads a domain, a sender, a server
// or an IP address as the recipient.
func TestClassifyPhraseAlone(t *testing.T) {
	tbl, err := newRuleTable(builtinRuleFile)
	if err != nil {
		t.Fatal(err)
	}
	p := New(Limits{})
	for _, reason := range []string{ReasonUserUnknown, ReasonHostUnknown, ReasonMailboxFull, ReasonSuspend} {
		rules := tbl.byReason[reasonIndex(reason)]
		if len(rules) < 50 {
			t.Errorf("%s: %d phrases, want the built-in table's", reason, len(rules))
		}
		for _, r := range rules {
			diag := "Reason: " + strings.ReplaceAll(r.Pattern, gapSep, " x ") + " (in reply to RCPT TO command)"
			if got := p.Classify("", diag); got.Reason != reason || got.Hard != r.Hard {
				t.Errorf("Classify(%q) = %s hard %v (rule %s), want %s hard %v", diag, got.Reason, got.Hard, got.Rule, reason, r.Hard)
			}
		}
	}
}

// TestClassifyLocalisedTrapsSoft: soft situations worded in other
// languages that a phrase for an unknown user or domain could take for
// one (a full mailbox "without space", a login's unknown user name, the
// sender's domain or user, the recipient's server) stay soft.
func TestClassifyLocalisedTrapsSoft(t *testing.T) {
	p := New(Limits{})
	for _, diag := range []string{
		"452 Kotak surat tidak ada ruang lagi",
		"452 Στο γραμματοκιβώτιο δεν υπάρχει αρκετός χώρος",
		"452 فضای کافی در صندوق پستی وجود ندارد",
		"535 5.7.8 Tunnistautuminen epäonnistui: tuntematon käyttäjätunnus tai salasana",
		"535 Godkendelse mislykkedes: ukendt brugernavn eller adgangskode",
		"535 Hitelesítés sikertelen: ismeretlen felhasználónév vagy jelszó",
		"550 Absenderdomain existiert nicht",
		"550 Het afzenderdomein bestaat niet",
		"550 Nieznana domena nadawcy",
		"550 送信者のドメインが見つかりません",
		"550 발신자 도메인이 존재하지 않습니다",
		"550 Expéditeur refusé : domaine inconnu",
		"451 Serveur de messagerie du destinataire introuvable, réessayez plus tard",
		"451 4.3.0 Temporärer Fehler: Mailserver für Empfänger nicht gefunden",
		"451 暂时找不到收件人的邮件服务器，请稍后重试",
		"550 存在しないユーザからの送信は受け付けません",
		"550 发件人用户名不存在",
		"450 Destinataire introuvable (liste grise), réessayez plus tard",
		"450 Получатель не найден: серый список, повторите позже",
	} {
		if r := p.Classify("", diag); r.Hard {
			t.Errorf("Classify(%q) = %s hard (rule %s), want soft", diag, r.Reason, r.Rule)
		}
	}
}
