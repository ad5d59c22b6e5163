// Package redact keeps credentials out of the errors and log lines that
// name a URL: the Redis, relay and mailbox URLs of the configuration and
// the CLI's API URL. URL shows a URL with its password replaced; ParseURL
// parses one with errors that never quote it. It owns nothing else.
package redact

import (
	"errors"
	"net/url"
	"strings"
)

// ErrMalformedURL is ParseURL's error for a URL that url.Parse refuses.
// url.Parse's own error is not shown: *url.Error quotes the whole URL, and
// its cause can quote part of a password as a port.
var ErrMalformedURL = errors.New("malformed URL (not shown: it may contain a password)")

// ErrUserinfoCut is ParseURL's error for a URL whose user information
// url.Parse does not find although the text has an '@': a '/', '?' or '#'
// in the password ended the authority early, so the rest of the password
// would be read as a port, path, query or fragment (and quoted by errors
// about those).
var ErrUserinfoCut = errors.New("the user information ends early: percent-encode any '/', '?' or '#' in the user name or password")

// URL returns rawURL for an error or a log line, with its password
// replaced by "xxxxx". It works on the text, without parsing, so that a URL
// that does not parse is redacted too: the user information is what comes
// before the last '@' after "://", because a password may hold unescaped
// '/', '?', '#' or '@' but the hosts, paths and queries of mailgate's URLs
// hold no '@'. Text before the last '@' with no ':' is a user name only and
// stays. A string without "://" but with an '@' is not shown at all.
func URL(rawURL string) string {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	at := strings.LastIndex(rest, "@")
	switch {
	case !ok && strings.Contains(rawURL, "@"):
		return "(URL not shown: it may contain a password)"
	case !ok || at < 0:
		return rawURL
	}
	user, _, hasPassword := strings.Cut(rest[:at], ":")
	if !hasPassword {
		return rawURL
	}
	return scheme + "://" + user + ":xxxxx@" + rest[at+1:]
}

// ParseURL is url.Parse for a URL that may hold a password, with errors
// that never quote it (ErrMalformedURL, ErrUserinfoCut); wrap them with
// URL(rawURL) to name the URL. A URL it accepts has its password in
// u.User, so the errors of what reads its port, path or query cannot quote
// the password either.
func ParseURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, ErrMalformedURL
	}
	if _, rest, _ := strings.Cut(rawURL, "://"); u.User == nil && strings.Contains(rest, "@") {
		return nil, ErrUserinfoCut
	}
	return u, nil
}
