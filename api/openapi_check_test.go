package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	mailgate "github.com/mailgate/mailgate"
)

// contract is the OpenAPI 3.1 contract as written, with a router over it,
// loaded once for every test of the package (test-only state).
var contract struct {
	once   sync.Once
	spec   *openapi3.T
	router routers.Router
	err    error
}

// loadContract is the cached contract; it fails t if the contract does not load.
func loadContract(t testing.TB) (*openapi3.T, routers.Router) {
	t.Helper()
	contract.once.Do(func() {
		contract.spec, _, contract.err = loadSpec(mailgate.OpenAPI)
		if contract.err == nil {
			contract.router, contract.err = gorillamux.NewRouter(contract.spec)
		}
	})
	if contract.err != nil {
		t.Fatalf("load openapi contract: %v", contract.err)
	}
	return contract.spec, contract.router
}

// checkResponse fails t if the response (status, headers, body) to req does
// not match the contract. Undocumented status codes are failures too. It
// checks against the contract as written (OpenAPI 3.1, JSON Schema 2020-12
// validation), so nullable fields and formats are checked exactly.
func checkResponse(t testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	spec, router := loadContract(t)
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Errorf("%s %s: not a route of the contract: %v", req.Method, req.URL.Path, err)
		return
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: status,
		Header: header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus:   true,
			MultiError:              true,
			SchemaValidationOptions: spec.GetSchemaValidationOptions(),
		},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		t.Errorf("%s %s → %d does not match the contract: %v\nbody: %s",
			req.Method, req.URL.Path, status, err, truncate(body, 2000))
	}
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return append(b[:n:n], "…"...)
	}
	return b
}
