package mta

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"errors"

	"github.com/emersion/go-sasl"
)

// saslClient returns the SASL client for mech. PLAIN (RFC 4616) and LOGIN
// come from go-sasl; go-sasl has no CRAM-MD5 or XOAUTH2 client, so those
// two are written here.
func saslClient(mech, username, password string) (sasl.Client, error) {
	switch mech {
	case AuthPlain:
		return sasl.NewPlainClient("", username, password), nil
	case AuthLogin:
		return sasl.NewLoginClient(username, password), nil
	case AuthCRAMMD5:
		return &cramMD5Client{username: username, secret: password}, nil
	case AuthXOAuth2:
		return &xoauth2Client{username: username, token: password}, nil
	}
	return nil, errors.New("unknown auth mechanism " + mech)
}

// chooseAuth is mech when set (it must be offered), else the first of
// authPreference offered by the server; "" when none fits.
func chooseAuth(mech string, offered func(string) bool) string {
	if mech != "" {
		if offered(mech) {
			return mech
		}
		return ""
	}
	// The automatic choice, in order of preference.
	for _, m := range []string{AuthPlain, AuthLogin, AuthCRAMMD5, AuthXOAuth2} {
		if offered(m) {
			return m
		}
	}
	return ""
}

// cramMD5Client is CRAM-MD5 (RFC 2195): the response to the server's
// challenge is "username hex(HMAC-MD5(secret, challenge))". Written by
// hand: go-sasl has no CRAM-MD5 client.
type cramMD5Client struct {
	username, secret string
}

// Start sends no initial response (RFC 2195 §2).
func (c *cramMD5Client) Start() (string, []byte, error) {
	return AuthCRAMMD5, nil, nil
}

// Next answers the single challenge.
func (c *cramMD5Client) Next(challenge []byte) ([]byte, error) {
	mac := hmac.New(md5.New, []byte(c.secret))
	mac.Write(challenge)
	return []byte(c.username + " " + hex.EncodeToString(mac.Sum(nil))), nil
}

// xoauth2Client is Google's and Microsoft's XOAUTH2: an initial response
// "user=U^Aauth=Bearer T^A^A" (^A is 0x01). On failure the server sends a
// JSON error as a challenge, which is answered with an empty line; the
// server then replies 5xx. Written by hand: go-sasl has only OAUTHBEARER.
type xoauth2Client struct {
	username, token string
}

// Start sends the whole credential as the initial response.
func (c *xoauth2Client) Start() (string, []byte, error) {
	return AuthXOAuth2, []byte("user=" + c.username + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

// Next acknowledges the error challenge with an empty response.
func (c *xoauth2Client) Next([]byte) ([]byte, error) {
	return []byte{}, nil
}
