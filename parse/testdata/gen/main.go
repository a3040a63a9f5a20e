// Command gen writes the parse corpus, parse/testdata/*.eml, with CRLF line
// ends and the non-UTF-8 charsets encoded by golang.org/x/text, so the bytes
// of every message can be reviewed as Go source. Run from the module root:
//
//	go run ./parse/testdata/gen parse/testdata
//
// then go test ./parse -update, and review the golden diff.
package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
)

const received = "Received: from client.example (client.example [127.0.0.1]) by mx.test (mailhook) with ESMTP id 01J0000000000000000000TEST; Sat, 28 Nov 2026 12:00:00 +0000\n"

func enc(e encoding.Encoding, s string) string {
	if e == nil {
		return s
	}
	out, err := e.NewEncoder().String(s)
	if err != nil {
		panic(fmt.Sprintf("encode %q: %v", s, err))
	}
	return out
}

// qp quoted-printable-encodes s (already in its charset), "\n" as line breaks.
func qp(s string) string {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		panic(err)
	}
	w.Close()
	return strings.ReplaceAll(b.String(), "\r\n", "\n")
}

func b64(data []byte) string {
	s := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	b.WriteString(s + "\n")
	return b.String()
}

func wordB(charset string, e encoding.Encoding, s string) string {
	return "=?" + charset + "?B?" + base64.StdEncoding.EncodeToString([]byte(enc(e, s))) + "?="
}

func wordQ(charset string, e encoding.Encoding, s string) string {
	raw := enc(e, s)
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == ' ':
			b.WriteByte('_')
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '.', c == ',', c == '-', c == '!':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	return "=?" + charset + "?Q?" + b.String() + "?="
}

func tinyPNG() []byte {
	img := image.NewNRGBA(image.Rect(0, 0, 4, 4))
	for y := 0; y < 4; y++ {
		for x := 0; x < 4; x++ {
			img.Set(x, y, color.NRGBA{R: uint8(40 * x), G: 120, B: uint8(50 * y), A: 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func fakePDF() []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n")
	b.WriteString("2 0 obj\n<< /Length 256 /Filter /FlateDecode >>\nstream\n")
	for i := 0; i < 256; i++ {
		b.WriteByte(byte(i))
	}
	b.WriteString("\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
	return b.Bytes()
}

var msgs = map[string]string{}

func add(name, body string) {
	if strings.Contains(body, "\r") {
		panic(name + ": contains CR; write LF only")
	}
	msgs[name] = received + body
}

func main() {
	add("plain", `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com;
	s=sel1; h=from:to:cc:subject:date:message-id;
	bh=frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=;
	b=dGVzdHNpZ25hdHVyZS10ZXN0c2lnbmF0dXJlLXRlc3RzaWduYXR1cmU=
Date: Fri, 27 Nov 2026 09:15:02 -0500
From: Alice Example <alice@example.com>
To: Bob Builder <bob@mx.test>, carol@mx.test
Cc: "Dave, Jr." <dave@example.org>
Subject: Lunch on Friday?
Message-ID: <20261127141502.4F2A1@mail.example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii; format=flowed
Content-Transfer-Encoding: 7bit
X-Mailer: Example Mail 4.2

Hi Bob,

Are you free for lunch on Friday? The new place on 5th Street
opens at noon, and they take reservations.

-- 
Alice
`)

	altText := "Hello,\n\nyour order #4711 (2 × Café Crème mug, 24,90 €) has shipped and should arrive by Monday, 30 November.\n\nTrack it here: https://shop.example/track/4711\n"
	altHTML := "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Shipped</title></head>\n<body><p>Hello,</p>\n<p>your order <b>#4711</b> (2 × Café Crème mug, 24,90&nbsp;€) has shipped and should arrive by Monday, 30 November.</p>\n<p><a href=\"https://shop.example/track/4711\">Track your parcel</a></p></body></html>\n"
	add("alternative", `Date: Thu, 26 Nov 2026 18:04:11 +0100
From: "Shop Example" <news@shop.example>
Reply-To: Support <support@shop.example>
To: customer@mx.test
Subject: Your order #4711 has shipped
Message-ID: <order-4711.shipped@shop.example>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="=_alt_6f1c2a"

This is a multi-part message in MIME format.

--=_alt_6f1c2a
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

`+qp(altText)+`
--=_alt_6f1c2a
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

`+qp(altHTML)+`
--=_alt_6f1c2a--
`)

	csv := "date,description,amount\n2026-11-01,Office chairs (×4),1196.00\n2026-11-12,Café supplies,84.50\n"
	add("attachments", `Date: Wed, 25 Nov 2026 11:30:00 +0100
From: Accounting <accounting@example.de>
To: bob@mx.test
Subject: November invoice and expenses
Message-ID: <6b1f0c2e-9d3a-4c1e-8f00-3a2b1c0d9e8f@example.de>
MIME-Version: 1.0
Content-Type: multipart/mixed;
 boundary="------------mKx2Ld7vQ0aYbB3zN9pR4s"

This is a multi-part message in MIME format.
--------------mKx2Ld7vQ0aYbB3zN9pR4s
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 7bit

Hi Bob,

please find the November invoice and the expense list attached.
The spreadsheet is the one from your desktop.

Regards,
Accounting

--------------mKx2Ld7vQ0aYbB3zN9pR4s
Content-Type: application/pdf;
 name="=?UTF-8?Q?Rechnung_M=C3=A4rz_2026=2Epdf?="
Content-Disposition: attachment;
 filename*=UTF-8''Rechnung%20M%C3%A4rz%202026.pdf
Content-Transfer-Encoding: base64

`+b64(fakePDF())+`--------------mKx2Ld7vQ0aYbB3zN9pR4s
Content-Type: text/csv; charset=UTF-8; name="expenses.csv"
Content-Disposition: attachment; filename="expenses.csv"
Content-Transfer-Encoding: base64

`+b64([]byte(csv))+`--------------mKx2Ld7vQ0aYbB3zN9pR4s
Content-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet;
 name="budget.xlsx"
Content-Disposition: attachment;
 filename="C:\\Users\\bob\\Desktop\\budget.xlsx"
Content-Transfer-Encoding: base64

`+b64([]byte("PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00not really a spreadsheet\x00\x00"))+`
--------------mKx2Ld7vQ0aYbB3zN9pR4s--
`)

	relHTML := `<html><body>
<p><img src="cid:logo.png@01DA1234.5678ABCD" alt="Example Corp" width="4" height="4"></p>
<p>Welcome aboard! Your account is ready.</p>
<p><img src="cid:divider+1@example.com" alt=""></p>
</body></html>
`
	add("inline-image", `Date: Tue, 24 Nov 2026 08:00:00 -0800
From: Example Corp <welcome@corp.example>
To: New User <newuser@mx.test>
Subject: Welcome to Example Corp
Message-ID: <welcome.9f8e7d@corp.example>
MIME-Version: 1.0
Content-Type: multipart/related; boundary="rel-b1"; type="multipart/alternative"

--rel-b1
Content-Type: multipart/alternative; boundary="alt-b2"

--alt-b2
Content-Type: text/plain; charset=us-ascii

Welcome aboard! Your account is ready.

--alt-b2
Content-Type: text/html; charset=us-ascii
Content-Transfer-Encoding: 7bit

`+relHTML+`
--alt-b2--

--rel-b1
Content-Type: image/png; name="logo.png"
Content-Disposition: inline; filename="logo.png"
Content-ID: <logo.png@01DA1234.5678ABCD>
Content-Transfer-Encoding: base64

`+b64(tinyPNG())+`--rel-b1
Content-Type: image/png
Content-ID: <divider+1@example.com>
Content-Transfer-Encoding: base64

`+b64(tinyPNG())+`--rel-b1--
`)

	latin1 := charmap.ISO8859_1
	frBody := "Bonjour à tous,\n\nLa réunion d'équipe aura lieu jeudi à 14h dans la salle « Étoile ».\nMerci de confirmer votre présence avant mercredi.\n\nÇa ne durera pas plus d'une heure, promis !\n\nFrançois\n"
	add("latin1-qp", `Date: Mon, 23 Nov 2026 10:12:45 +0100
From: `+wordQ("iso-8859-1", latin1, "François Müller")+` <francois@example.fr>
To: equipe@mx.test
Subject: `+wordQ("ISO-8859-1", latin1, "Réunion d'équipe à 14h")+`
Message-ID: <CAF=reunion-2026-11-23@example.fr>
MIME-Version: 1.0
Content-Type: text/plain; charset="ISO-8859-1"
Content-Transfer-Encoding: quoted-printable

`+qp(enc(latin1, frBody)))

	cp1252 := charmap.Windows1252
	html1252 := "<html><body>\n<p>“Quarterly” results – final…</p>\n<p>Revenue: €1.2m — up 8 % on last year’s figures.</p>\n</body></html>\n"
	add("windows-1252", `Date: Sun, 22 Nov 2026 21:47:03 +0000
From: "O'Brien, Siobhan" <siobhan@example.ie>
To: board@mx.test
Subject: `+wordQ("windows-1252", cp1252, "“Quarterly” report – € figures")+`
Message-ID: <000001d9abcd$12345678$9abcdef0@example.ie>
X-Mailer: Microsoft Outlook 16.0
MIME-Version: 1.0
Content-Type: text/html; charset="windows-1252"
Content-Transfer-Encoding: 8bit

`+enc(cp1252, html1252))

	jis := japanese.ISO2022JP
	sjis := japanese.ShiftJIS
	jaText := "田中です。\n来週の会議の資料をお送りします。\nご確認のほど、よろしくお願いいたします。\n"
	jaHTML := "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=Shift_JIS\"></head>\n<body><p>田中です。</p><p>来週の会議の資料をお送りします。</p><p>ご確認のほど、よろしくお願いいたします。</p></body></html>\n"
	add("japanese", `Date: Sat, 21 Nov 2026 09:30:00 +0900
From: `+wordB("ISO-2022-JP", jis, "田中 太郎")+` <tanaka@example.jp>
To: `+wordB("ISO-2022-JP", jis, "佐藤 花子")+` <sato@mx.test>
Subject: `+wordB("ISO-2022-JP", jis, "会議資料の送付")+`
Message-ID: <20261121093000.A1B2C3@example.jp>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="----=_Part_1234_5678.1763685000000"

------=_Part_1234_5678.1763685000000
Content-Type: text/plain; charset=ISO-2022-JP
Content-Transfer-Encoding: 7bit

`+enc(jis, jaText)+`
------=_Part_1234_5678.1763685000000
Content-Type: text/html; charset=Shift_JIS
Content-Transfer-Encoding: base64

`+b64([]byte(enc(sjis, jaHTML)))+`------=_Part_1234_5678.1763685000000--
`)

	koi := charmap.KOI8R
	ruBody := "Привет, Боб!\n\nПересылаю отчёт за ноябрь. Встреча в пятницу в 15:00.\n\nС уважением,\nИван Петров\n"
	add("koi8r", `Date: Fri, 20 Nov 2026 16:20:00 +0300
From: `+wordQ("koi8-r", koi, "Иван Петров")+` <ivan@example.ru>
To: bob@mx.test
Subject: `+wordB("KOI8-R", koi, "Отчёт за ноябрь")+`
Message-ID: <otchet-2026-11@example.ru>
MIME-Version: 1.0
Content-Type: text/plain; charset=koi8-r
Content-Transfer-Encoding: 8bit

`+enc(koi, ruBody))

	add("encoded-words", `Date: Thu, 19 Nov 2026 12:00:00 +0000
From: "=?UTF-8?Q?J=C3=BCrgen_Wei=C3=9F?=" <juergen@example.de>
To: =?UTF-8?B?5p2O5piO?= <li.ming@example.cn>,
 =?windows-1251?B?wO3t4CDR6Ozu7e7i4A==?= <anna@example.ru>,
 =?utf-8*en?Q?Language_Tagged?= <lang@example.org>
Cc: =?x-unknown?Q?Mystery_Sender?= <mystery@example.net>,
 =?UTF-8?Q?Ren=C3=A9e?= "O'Hara" <renee@example.com>
Reply-To: Party Team: planner@example.org, =?UTF-8?Q?Zo=C3=AB?= <zoe@example.org>;
Subject: =?UTF-8?B?8J+OiQ==?= =?UTF-8?Q?_Party_f=C3=BCr?=
 =?ISO-8859-1?Q?_Gro=DF_und_Klein?= at 8pm =?utf-8?b?4oCU?=
 =?utf-8?b?IPCf?= =?utf-8?b?jok=?=
Message-ID: <party-2026@example.de>
X-Broken-Word: =?utf-8?Q?unterminated word and =?bogus?X?abc?= stay as written
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Encoded words in every header above.
`)

	add("broken-unclosed", `Date: Wed, 18 Nov 2026 07:07:07 +0000
From: Scanner <scanner@printer.example>
To: office@mx.test
Subject: Scanned document (transfer interrupted)
Message-ID: <scan-0042@printer.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="SCAN_BOUNDARY_42"

--SCAN_BOUNDARY_42
Content-Type: text/plain; charset=us-ascii

Scanned on Wed, 18 Nov 2026 07:07. 1 page.

--SCAN_BOUNDARY_42
Content-Type: application/pdf; name="scan0042.pdf"
Content-Disposition: attachment; filename="scan0042.pdf"
Content-Transfer-Encoding: base64

`+b64(fakePDF())[:200]+"\n")

	add("broken-base64", `Date: Tue, 17 Nov 2026 13:13:13 +0000
From: Legacy App <noreply@legacy.example>
To: ops@mx.test
Subject: Nightly export (corrupted)
Message-ID: <export-20261117@legacy.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b64-broken"

--b64-broken
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

RXhwb3J0IGZpbmlzaGVkIHdpdGggMyB3YXJuaW5ncy4K!!*
--b64-broken
Content-Type: application/octet-stream; name="export.bin"
Content-Disposition: attachment; filename="export.bin"
Content-Transfer-Encoding: base64

AAECAwQFBgcICQoL#DA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEy
MzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2Rl=
Zm
--b64-broken--
`)

	add("broken-charset", `Date: Mon, 16 Nov 2026 09:09:09 +0000
From: `+wordQ("x-mac-klingon", nil, "Worf")+` <worf@example.net>
To: crew@mx.test
Subject: `+wordQ("x-mac-klingon", nil, "Qapla!")+` and an unknown charset
Message-ID: <unknown-charset@example.net>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="cs"

--cs
Content-Type: text/plain; charset="x-mac-klingon"
Content-Transfer-Encoding: 8bit

Declared charset nobody knows; the bytes are `+enc(latin1, "Latin-1: café")+`.

--cs
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: 8bit

<p>Declared UTF-8 but actually `+enc(latin1, "Latin-1: café")+`.</p>

--cs--
`)

	add("broken-no-boundary", `Date: Sun, 15 Nov 2026 15:15:15 +0000
From: Homegrown Mailer <cron@server.example>
To: admin@mx.test
Subject: Disk usage report
Message-ID: <cron-df-20261115@server.example>
MIME-Version: 1.0
Content-Type: multipart/mixed

Filesystem      Size  Used Avail Use% Mounted on
/dev/sda1        50G   45G  5.0G  90% /
/dev/sdb1       200G  120G   80G  60% /data
`)

	add("reply", `Date: Fri, 27 Nov 2026 10:02:33 +0000
From: Bob Builder <bob@mx.test>
To: Alice Example <alice@example.com>
Subject: Re: Lunch on Friday?
Message-ID: <CABob+reply.0001@mail.mx.test>
In-Reply-To: <20261127141502.4F2A1@mail.example.com>
References: <20261120081500.1A2B3@mail.example.com>
 <CABob+earlier.0000@mail.mx.test>
	<20261127141502.4F2A1@mail.example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

`+qp("Sure, noon works. I’ll book a table for two.\n\nBob\n\nOn Fri, 27 Nov 2026 at 09:15, Alice Example <alice@example.com> wrote:\n> Hi Bob,\n>\n> Are you free for lunch on Friday?\n"))

	add("utf8-smtputf8", `Date: Thu, 26 Nov 2026 20:20:20 +0100
From: Jörg Müller <jörg@bücher.example>
To: 张伟 <zhang.wei@例子.测试>, "Zoë Ñúñez" <zoe@mx.test>
Subject: Grüße aus Köln – 東京へようこそ 🎌
Message-ID: <ünïcode-id.1@bücher.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hallo zusammen,

viele Grüße aus Köln! Nächste Woche bin ich in 東京.
Привет всем — γεια σας — مرحبا — 🎌🍣

Jörg
`)

	add("html-only", `Date: Wed, 25 Nov 2026 06:00:00 +0000
From: Status Page <status@status.example>
To: oncall@mx.test
Subject: [Resolved] Elevated error rates
Message-ID: <incident-8812.resolved@status.example>
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: 7bit

<html><body>
<h1>Resolved</h1>
<p>Between 04:10 and 05:25 UTC some API requests failed with <b>HTTP 503</b>.</p>
<ul><li>Cause: a bad configuration push</li><li>Fix: rolled back</li></ul>
<p><a href="https://status.example/incidents/8812">Incident details</a></p>
</body></html>
`)

	inner := `Date: Mon, 23 Nov 2026 08:00:00 +0000
From: Carol <carol@example.com>
To: Bob Builder <bob@mx.test>
Subject: Original question
Message-ID: <original.1@example.com>
Content-Type: text/plain; charset=us-ascii

Do we still have the spare projector?
`
	add("forward", `Date: Tue, 24 Nov 2026 17:45:00 +0000
From: Bob Builder <bob@mx.test>
To: Dave <dave@example.org>
Subject: Fwd: Original question
Message-ID: <fwd.2@mail.mx.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="fwd-boundary"

--fwd-boundary
Content-Type: text/plain; charset=us-ascii

See Carol's question below; can you check the storage room?

--fwd-boundary
Content-Type: message/rfc822
Content-Disposition: attachment; filename="Original question.eml"

`+inner+`
--fwd-boundary--
`)

	// Raw 8-bit Latin-1 in headers, as old mailers sent before RFC 6532.
	add("legacy-8bit-header", "Date: Sat, 14 Nov 2026 14:14:14 +0100\nFrom: "+enc(latin1, "Hélène Dubois")+" <helene@example.fr>\nTo: bob@mx.test\nSubject: "+enc(latin1, "Très bien, à demain")+"\nMessage-ID: <legacy-8bit@example.fr>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\n"+enc(latin1, "À demain, et merci pour le café.\n"))

	add("mislabeled-charset", `Date: Fri, 13 Nov 2026 08:30:00 +0000
From: Build Bot <ci@build.example>
To: dev@mx.test
Subject: Nightly build report
Message-ID: <build-20261113@build.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 8bit

Nightly build #1287 finished — all 412 tests passed.
Contributors this week: José Álvarez, Zoë Müller, François Lefèvre, Søren Kierkegård.
Artefacts: café-app-1.4.2.tar.gz (12 MB), naïve-bayes-model.bin (3 MB).
Next release: “Ångström” on 20 November.
`)

	ics := "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Example Corp//Calendar 1.0//EN\nMETHOD:REQUEST\nBEGIN:VEVENT\nUID:planning-2026-12-01@corp.example\nDTSTAMP:20261127T090000Z\nDTSTART:20261201T140000Z\nDTEND:20261201T150000Z\nSUMMARY:Q1 planning\nORGANIZER;CN=Alice Example:mailto:alice@example.com\nATTENDEE;CN=Bob Builder;RSVP=TRUE:mailto:bob@mx.test\nEND:VEVENT\nEND:VCALENDAR\n"
	add("calendar-invite", `Date: Fri, 27 Nov 2026 09:00:00 +0000
From: Alice Example <alice@example.com>
To: Bob Builder <bob@mx.test>
Subject: Invitation: Q1 planning @ Tue 1 Dec 2026 14:00 - 15:00 (UTC)
Message-ID: <invite.planning-2026-12-01@corp.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="000000000000mixed01"

--000000000000mixed01
Content-Type: multipart/alternative; boundary="000000000000alt02"

--000000000000alt02
Content-Type: text/plain; charset="UTF-8"

You have been invited to Q1 planning, Tue 1 Dec 2026 14:00 - 15:00 (UTC).

--000000000000alt02
Content-Type: text/html; charset="UTF-8"

<p>You have been invited to <b>Q1 planning</b>, Tue 1 Dec 2026 14:00 - 15:00 (UTC).</p>

--000000000000alt02
Content-Type: text/calendar; charset="UTF-8"; method=REQUEST
Content-Transfer-Encoding: 7bit

`+ics+`
--000000000000alt02--

--000000000000mixed01
Content-Type: application/ics; name="invite.ics"
Content-Disposition: attachment; filename="invite.ics"
Content-Transfer-Encoding: base64

`+b64([]byte(strings.ReplaceAll(ics, "\n", "\r\n")))+`--000000000000mixed01--
`)

	dir := os.Args[1]
	for name, m := range msgs {
		data := strings.ReplaceAll(m, "\n", "\r\n")
		if err := os.WriteFile(filepath.Join(dir, name+".eml"), []byte(data), 0o644); err != nil {
			panic(err)
		}
	}
	fmt.Println(len(msgs), "messages")
}
