package mta

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/google/go-cmp/cmp"
	"github.com/mailgate/mailgate/dkimkey"
	"github.com/mailgate/mailgate/internal/testsvc"
)

// fixtureKeys are generated once per test run (no key material is kept in
// the repository), round-tripped through PEM like stored keys.
var fixtureKeys sync.Map

// fixtureKey is the run's DKIM private key for alg.
func fixtureKey(t testing.TB, alg string) crypto.Signer {
	t.Helper()
	if k, ok := fixtureKeys.Load(alg); ok {
		return k.(crypto.Signer)
	}
	gen, err := dkimkey.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dkimkey.MarshalPrivateKey(gen)
	if err != nil {
		t.Fatal(err)
	}
	k, err := dkimkey.ParsePrivateKey(b)
	if err != nil {
		t.Fatalf("parse %s key: %v", alg, err)
	}
	actual, _ := fixtureKeys.LoadOrStore(alg, k)
	return actual.(crypto.Signer)
}

// keySet is the keys to sign with and the DNS records that publish them.
type keySet struct {
	keys    []DKIMKey
	records map[string]string
}

func newKeySet(t testing.TB, algs ...string) keySet {
	t.Helper()
	ks := keySet{records: map[string]string{}}
	for _, alg := range algs {
		k := DKIMKey{Domain: "xn--bckerei-mller-6ib.example", Selector: "mg-" + alg, Signer: fixtureKey(t, alg)}
		v, err := dkimkey.DNSRecordValue(k.Signer.Public())
		if err != nil {
			t.Fatal(err)
		}
		ks.keys = append(ks.keys, k)
		ks.records[k.Selector+"._domainkey."+k.Domain] = v
	}
	return ks
}

// verifyGo checks every signature with go-msgauth and returns the signing
// domains and selectors' h= lists.
func verifyGo(t *testing.T, signed []byte, records map[string]string) []*dkim.Verification {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(signed), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if v, ok := records[strings.TrimSuffix(name, ".")]; ok {
				return []string{v}, nil
			}
			return nil, errors.New("no such record " + name)
		},
	})
	if err != nil {
		t.Fatalf("go-msgauth verify: %v", err)
	}
	for i, v := range vs {
		if v.Err != nil {
			t.Errorf("go-msgauth: signature %d (%s) does not verify: %v", i, v.Domain, v.Err)
		}
	}
	return vs
}

// verifyPython checks every signature of each message with Debian's
// python3-dkim, keys supplied offline, in one run of testdata/dkimverify.py.
// It returns one result per signature per message.
func verifyPython(t *testing.T, records map[string]string, msgs ...[]byte) [][]bool {
	t.Helper()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.json")
	b, _ := json.Marshal(records)
	if err := os.WriteFile(keys, b, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{filepath.Join("testdata", "dkimverify.py"), keys}
	for i, m := range msgs {
		path := filepath.Join(dir, fmt.Sprintf("%d.eml", i))
		if err := os.WriteFile(path, m, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, path)
	}
	cmd := exec.Command("/usr/bin/python3", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		t.Logf("python3-dkim: %s", stderr.String())
	case errors.As(err, &exit) && exit.ExitCode() == 3, errors.Is(err, exec.ErrNotFound), errors.Is(err, os.ErrNotExist):
		testsvc.Missing(t, "python3-dkim with python3-nacl (/usr/bin/python3)", fmt.Errorf("%v: %s", err, stderr.String()))
	case err != nil:
		t.Fatalf("python3-dkim: %v: %s", err, stderr.String())
	}
	var results [][]bool
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var r []bool
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("python3-dkim output %q: %v", out, err)
		}
		results = append(results, r)
	}
	if len(results) != len(msgs) {
		t.Fatalf("python3-dkim gave %d results for %d messages", len(results), len(msgs))
	}
	return results
}

// signedMessages are built messages covering the cases DKIM must survive.
func signedMessages(t *testing.T) map[string][]byte {
	t.Helper()
	png := bytes.Repeat([]byte("\x89PNG\r\n\x1a\n\x00"), 300)
	cases := map[string]func(m *Message){
		"text": func(m *Message) {},
		"utf-8 headers and html": func(m *Message) {
			m.From.Name = "Bäckerei Müller"
			m.Subject = "Grüße aus Köln – 🎉 " + strings.Repeat("sehr lang ", 20)
			m.To = []Address{{Name: "Zoë Ångström", Email: "zoe@example.org"}}
			m.HTML = "<p>Grüße</p>"
			m.Headers = map[string]string{"X-Note": "café"}
		},
		"attachments and inline image": func(m *Message) {
			m.HTML = `<p><img src="cid:logo"></p>` + strings.Repeat("<p>line</p>\n", 200)
			m.Attachments = []Attachment{
				{Filename: "logo.png", ContentType: "image/png", Content: png, ContentID: "logo"},
				{Filename: "Rechnung März.pdf", ContentType: "application/pdf", Content: bytes.Repeat([]byte{0, 1, 2, 255}, 5000)},
			}
		},
	}
	out := map[string][]byte{}
	for name, edit := range cases {
		m := baseMessage()
		m.From.Email = "info@xn--bckerei-mller-6ib.example"
		edit(m)
		raw, err := Build(m)
		if err != nil {
			t.Fatalf("build %s: %v", name, err)
		}
		out[name] = raw
	}
	return out
}

func TestSignVerifies(t *testing.T) {
	messages := signedMessages(t)
	keySets := map[string][]string{"rsa": {"rsa"}, "ed25519": {"ed25519"}, "dual": {"rsa", "ed25519"}}
	records := newKeySet(t, "rsa", "ed25519").records
	s := NewSigner(SignerConfig{Expiration: time.Hour})
	var names []string
	var signedAll [][]byte
	var wantPy [][]bool
	for msgName, raw := range messages {
		for setName, algs := range keySets {
			ks := newKeySet(t, algs...)
			signed, err := s.Sign(raw, ks.keys)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			names = append(names, msgName+"/"+setName)
			signedAll = append(signedAll, signed)
			wantPy = append(wantPy, slices.Repeat([]bool{true}, len(algs)))
			t.Run(msgName+"/"+setName+"/go-msgauth", func(t *testing.T) {
				if !bytes.HasSuffix(signed, raw) {
					t.Fatal("signed message does not end with the original message")
				}
				checkWireFormat(t, signed)
				var got []string
				for _, v := range verifyGo(t, signed, ks.records) {
					got = append(got, v.Domain+" "+strings.Join(v.HeaderKeys, ":"))
				}
				hk := "From:From:To:Subject:Date:Message-ID:MIME-Version:Content-Type:Feedback-ID:X-Mailgate-ID"
				if msgName == "text" { // single part: its Content-Transfer-Encoding is in the header
					hk = strings.Replace(hk, "Content-Type:", "Content-Type:Content-Transfer-Encoding:", 1)
				}
				want := slices.Repeat([]string{"xn--bckerei-mller-6ib.example " + hk}, len(algs))
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("verifications (-want +got):\n%s", diff)
				}
			})
		}
	}
	t.Run("python3-dkim", func(t *testing.T) {
		got := verifyPython(t, records, signedAll...)
		for i := range names {
			if diff := cmp.Diff(wantPy[i], got[i]); diff != "" {
				t.Errorf("%s: python3-dkim results (-want +got):\n%s", names[i], diff)
			}
		}
	})
}

func TestSignDetectsTampering(t *testing.T) {
	ks := newKeySet(t, "rsa", "ed25519")
	raw := signedMessages(t)["text"]
	signed, err := NewSigner(SignerConfig{}).Sign(raw, ks.keys)
	if err != nil {
		t.Fatal(err)
	}
	msgs := [][]byte{
		signed,
		append([]byte("From: evil@attacker.example\r\n"), signed...),
		bytes.Replace(signed, []byte("Thanks"), []byte("Thank$"), 1),
		bytes.Replace(signed, []byte("Subject: Your order"), []byte("Subject: Our order"), 1),
	}
	want := [][]bool{{true, true}, {false, false}, {false, false}, {false, false}}
	if diff := cmp.Diff(want, verifyPython(t, ks.records, msgs...)); diff != "" {
		t.Errorf("python3-dkim on original, second From, changed body, changed subject (-want +got):\n%s", diff)
	}
}

func TestSignOptions(t *testing.T) {
	ks := newKeySet(t, "ed25519")
	raw := signedMessages(t)["text"]
	now := time.Now()
	var observed []string
	s := NewSigner(SignerConfig{
		HeaderKeys: []string{"Subject", "X-Absent"},
		Now:        func() time.Time { return now },
		Expiration: 2 * time.Hour,
		Observe:    func(alg string, d time.Duration) { observed = append(observed, alg) },
	})
	signed, err := s.Sign(raw, ks.keys)
	if err != nil {
		t.Fatal(err)
	}
	vs := verifyGo(t, signed, ks.records)
	if diff := cmp.Diff([]string{"From", "Subject"}, vs[0].HeaderKeys); diff != "" {
		t.Errorf("signed headers (-want +got):\n%s", diff)
	}
	if got, want := vs[0].Expiration.Unix(), now.Add(2*time.Hour).Unix(); got != want {
		t.Errorf("x= %d, want %d", got, want)
	}
	if diff := cmp.Diff([]string{"ed25519"}, observed); diff != "" {
		t.Errorf("observed (-want +got):\n%s", diff)
	}
	if out, err := s.Sign(raw, nil); err != nil || !bytes.Equal(out, raw) {
		t.Errorf("Sign without keys = %v, want the message unchanged", err)
	}
	if _, err := s.Sign(raw, []DKIMKey{{Domain: "x.example", Selector: "s"}}); err == nil {
		t.Error("Sign with a key without a signer succeeded")
	}
}
