package ratelimit

import "time"

// provider is one big mailbox provider: the recipient domains it serves and
// the limits mailgate applies to them by default. The domains of one
// provider share one budget (they land on the same receiving servers).
type provider struct {
	name    string
	domains []string
	limits  []Limit
}

// perMinute is n events per minute.
func perMinute(n int) Limit { return Limit{Events: n, Period: time.Minute} }

// providerDefaults is the built-in table of recipient-domain limits. It is a
// function, not a package variable, so that no caller can change it.
//
// No provider publishes a fixed per-sender rate: Gmail, Microsoft, Yahoo,
// Apple, GMX/WEB.DE, Mail.ru and Yandex throttle by reputation and answer
// 421/451 when a sender goes too fast. These numbers are deliberately
// conservative starting points for a sender whose IP and domain are not yet
// warmed up; raise them per domain with PolicyConfig.RecipientDomains once
// the provider's postmaster tools show a good reputation:
//
//	provider    domains                                        limits
//	google      gmail.com googlemail.com                       20/s, 600/m
//	microsoft   outlook.com hotmail.com live.com msn.com       10/s, 300/m
//	yahoo       yahoo.com ymail.com aol.com                    10/s, 300/m
//	apple       icloud.com me.com mac.com                      5/s, 150/m
//	gmx         gmx.de gmx.net gmx.com gmx.at gmx.ch web.de    5/s, 150/m
//	mailru      mail.ru                                        5/s, 150/m
//	yandex      yandex.ru yandex.com ya.ru                     5/s, 150/m
func providerDefaults() []provider {
	small := []Limit{PerSecond(5), perMinute(150)}
	medium := []Limit{PerSecond(10), perMinute(300)}
	return []provider{
		{"google", []string{"gmail.com", "googlemail.com"}, []Limit{PerSecond(20), perMinute(600)}},
		{"microsoft", []string{"outlook.com", "hotmail.com", "live.com", "msn.com"}, medium},
		{"yahoo", []string{"yahoo.com", "ymail.com", "aol.com"}, medium},
		{"apple", []string{"icloud.com", "me.com", "mac.com"}, small},
		{"gmx", []string{"gmx.de", "gmx.net", "gmx.com", "gmx.at", "gmx.ch", "web.de"}, small},
		{"mailru", []string{"mail.ru"}, small},
		{"yandex", []string{"yandex.ru", "yandex.com", "ya.ru"}, small},
	}
}

// providerIndex maps each provider domain to its provider.
func providerIndex() map[string]provider {
	idx := make(map[string]provider)
	for _, p := range providerDefaults() {
		for _, d := range p.domains {
			idx[d] = p
		}
	}
	return idx
}

// ProviderDomains lists the recipient domains that have built-in default
// limits, by provider name, for documentation and configuration checks.
func ProviderDomains() map[string][]string {
	out := make(map[string][]string)
	for _, p := range providerDefaults() {
		out[p.name] = append([]string(nil), p.domains...)
	}
	return out
}
