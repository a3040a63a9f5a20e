package signing_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/mailhook/mailhook/signing"
)

// A receiver written in Go verifies a mailhook delivery in three lines:
// read the raw body, verify it against the headers, refuse on error. Verify
// the bytes as received, before decoding the JSON.
func ExampleVerifyRequest() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // the MAILHOOK_WEBHOOK_SECRET mailhook signs with

	receiver := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
		if err != nil || signing.VerifyRequest(secret, r.Header, body, time.Now(), 0) != nil {
			http.Error(w, "invalid webhook", http.StatusUnauthorized)
			return
		}
		// Authentic. The webhook-id header is the event id: drop duplicates by it.
		w.WriteHeader(http.StatusNoContent)
	})

	// What mailhook sends, simulated: the body it signed, and the body
	// that arrives (the same, unless something altered it on the way).
	signer, _ := signing.NewSigner(secret)
	send := func(signed, arrived []byte) int {
		req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(arrived))
		signer.SetHeaders(req.Header, "evt_1", time.Now(), signed)
		rec := httptest.NewRecorder()
		receiver.ServeHTTP(rec, req)
		return rec.Code
	}
	body := []byte(`{"type":"email.received","data":{"subject":"hello"}}`)
	fmt.Println(send(body, body))
	fmt.Println(send(body, []byte(`{"type":"email.received","data":{"subject":"forged"}}`)))
	// Output:
	// 204
	// 401
}

// Sign reproduces the Standard Webhooks published test vector.
func ExampleSigner_Sign() {
	signer, err := signing.NewSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		panic(err)
	}
	fmt.Println(signer.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`)))
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}

// During a secret rotation mailhook signs with both secrets; a receiver
// holding either one accepts the delivery, and one holding both can use a
// Signer to verify.
func ExampleSigner_Verify() {
	oldSecret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	newSecret := "whsec_bWFpbGhvb2stcm90YXRpb24tdGVzdC1rZXktMDAwMiE="
	sender, _ := signing.NewSigner(oldSecret, newSecret) // MAILHOOK_WEBHOOK_SECRET=old,new
	now := time.Now()
	body := []byte(`{}`)
	header := sender.Sign("evt_1", now, body)

	ts := fmt.Sprint(now.Unix())
	fmt.Println(signing.Verify(oldSecret, "evt_1", ts, header, body, now, 0))
	fmt.Println(signing.Verify(newSecret, "evt_1", ts, header, body, now, 0))

	receiver, _ := signing.NewSigner(newSecret, oldSecret)
	fmt.Println(receiver.Verify("evt_1", ts, header, body, now, 0))
	// Output:
	// <nil>
	// <nil>
	// <nil>
}
