package bounce_test

import (
	"fmt"
	"strings"

	"github.com/mailgate/mailgate/bounce"
)

// A standard delivery status notification (RFC 3464), returned to the
// VERP address the message was sent from.
const exampleDSN = `From: MAILER-DAEMON@mx.example.net
To: b+v1.k1.AbCdEf@bounces.example.com
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Your message could not be delivered.

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; gone@example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <gone@example.org>: User unknown

--b
Content-Type: text/rfc822-headers

Message-ID: <order-42@shop.example.com>
X-Mailgate-ID: 01HQ7Z8K3M

--b--
`

func ExampleParse() {
	r, err := bounce.Parse([]byte(strings.ReplaceAll(exampleDSN, "\n", "\r\n")))
	if err != nil {
		fmt.Println(err)
		return
	}
	x := r.Results[0]
	fmt.Println(r.Kind, x.Recipient, x.Status, x.ReplyCode, x.Reason, x.Hard)
	fmt.Println(r.Refs.VERPToken, r.Refs.MailgateID, r.Refs.OriginalMessageID)
	// Output:
	// bounce gone@example.org 5.1.1 550 userunknown true
	// v1.k1.AbCdEf 01HQ7Z8K3M order-42@shop.example.com
}

func ExampleReport_JSON() {
	r, _ := bounce.Parse([]byte("From: anna@example.org\r\nSubject: Re: Your order\r\n" +
		"In-Reply-To: <order-42@shop.example.com>\r\n\r\nThanks!\r\n\r\nAnna\r\n\r\n" +
		"On Mon, 3 Mar 2025 at 10:15, Shop <orders@shop.example.com> wrote:\r\n> Your order shipped.\r\n"))
	b, _ := r.JSON()
	fmt.Println(string(b))
	// Output:
	// {
	//   "kind": "reply",
	//   "results": [],
	//   "refs": {
	//     "in_reply_to": "order-42@shop.example.com"
	//   },
	//   "reply": {
	//     "from": "anna@example.org",
	//     "subject": "Re: Your order",
	//     "text": "Thanks!\n\nAnna"
	//   }
	// }
}
