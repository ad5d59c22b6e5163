package api

import (
	"bytes"
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/mailgate/mailgate/store"
)

// idemClaim is a claimed Idempotency-Key, or the zero value when the
// request carried none.
type idemClaim struct {
	s     *Server
	keyID string
	key   string
	// token owns the claim (store.IdempotencyState.Token).
	token string
}

// result finishes the claim in the commit's transaction, recording the
// response respond builds from what the store created; nil without a key.
func (ic idemClaim) result(respond func([]store.Created) (int, []byte, error)) *store.IdempotencyResult {
	if ic.key == "" {
		return nil
	}
	return &store.IdempotencyResult{KeyID: ic.keyID, Key: ic.key, Token: ic.token, Respond: respond}
}

// release frees a claim whose request did not commit, so that a retry is
// processed afresh (Stripe keeps no result for requests that failed
// validation or did not run).
func (ic idemClaim) release(ctx context.Context) {
	if ic.key == "" {
		return
	}
	if err := ic.s.deps.Store.ReleaseIdempotencyKey(context.WithoutCancel(ctx), ic.keyID, ic.key, ic.token); err != nil {
		ic.s.deps.Log.Warn("release idempotency key", "err", err)
	}
}

// claimIdempotency implements Stripe's Idempotency-Key semantics, scoped to
// the API key: a new key is claimed; a finished key with the same request
// replays the first response (replay true, response written); the same key
// with another request is 422; a key still in flight is 409.
func (s *Server) claimIdempotency(c echo.Context, req any) (idemClaim, bool, error) {
	key := c.Request().Header.Get(idempotencyHeader)
	if key == "" {
		return idemClaim{}, false, nil
	}
	if len(key) > 255 {
		return idemClaim{}, false, validationProblem([]FieldError{{Field: "/headers/" + idempotencyHeader,
			Message: "must be at most 255 characters"}})
	}
	apiKey := caller(c)
	hash := requestHash(c.Request().Method+" "+c.Path(), req)
	st, err := s.deps.Store.ClaimIdempotencyKey(c.Request().Context(), apiKey.ID, key, hash, s.cfg.IdempotencyStale)
	if err != nil {
		return idemClaim{}, false, err
	}
	switch {
	case st.Fresh:
		return idemClaim{s: s, keyID: apiKey.ID, key: key, token: st.Token}, false, nil
	case st.InFlight:
		return idemClaim{}, false, newProblem(http.StatusConflict, "idempotency-in-flight",
			"Request in progress", "a request with this Idempotency-Key is still being processed; retry later")
	case !bytes.Equal(st.RequestHash, hash):
		return idemClaim{}, false, newProblem(http.StatusUnprocessableEntity, "idempotency-mismatch",
			"Idempotency-Key reused", "this Idempotency-Key was used with a different request")
	}
	c.Response().Header().Set("Idempotent-Replayed", "true")
	return idemClaim{}, true, c.JSONBlob(st.ResponseCode, st.ResponseBody)
}
