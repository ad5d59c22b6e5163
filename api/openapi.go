package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"
)

// uuidPattern is the textual form of a UUID (RFC 9562 §4), any version.
var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// requestViewVersion is the OpenAPI version the request router presents to
// openapi3filter; see loadRequestView.
const requestViewVersion = "3.0.3"

// loadSpec parses the embedded contract once (servers cleared, formats
// registered) and validates it. It returns the contract as written
// (OpenAPI 3.1, used to check responses) and a router for request
// validation built on a second, request-only view of it (loadRequestView).
func loadSpec(doc []byte) (*openapi3.T, routers.Router, error) {
	spec, err := parseSpec(doc)
	if err != nil {
		return nil, nil, err
	}
	if err := spec.Validate(context.Background()); err != nil {
		return nil, nil, fmt.Errorf("openapi contract is invalid: %w", err)
	}
	view, err := loadRequestView(doc)
	if err != nil {
		return nil, nil, err
	}
	router, err := gorillamux.NewRouter(view)
	if err != nil {
		return nil, nil, fmt.Errorf("build openapi router: %w", err)
	}
	return spec, router, nil
}

// parseSpec loads doc with servers cleared (so routes match any host) and
// the string formats the contract uses registered on the document.
// "email" is deliberately not among them: addresses are checked by our own
// validator (address.go), which knows RFC 5322 names and IDN domains.
func parseSpec(doc []byte) (*openapi3.T, error) {
	spec, err := openapi3.NewLoader().LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("load openapi contract: %w", err)
	}
	spec.Servers = nil
	spec.SetStringFormatValidators(map[string]openapi3.StringFormatValidator{
		"uuid": openapi3.NewRegexpFormatValidator(uuidPattern.String()),
		"uri":  openapi3.NewCallbackValidator(checkURI),
	})
	return spec, nil
}

func checkURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() {
		return errors.New("not an absolute URI")
	}
	return nil
}

// loadRequestView is the contract as the request validator sees it, with
// two changes made for speed and memory, not meaning:
//
//   - Its version reads 3.0.3. kin-openapi v0.153.0 validates a 3.1
//     document's bodies by compiling each schema into a JSON Schema 2020-12
//     validator on every request (~2 ms for a message) and, for schemas
//     that use $ref and no 2020-only keyword (all of our request schemas),
//     then discards it and runs its 3.0 validator anyway, which understands
//     type arrays such as [string, "null"]. Skipping the compile gives the
//     same verdicts in ~10 µs; TestRequestViewAgreesWithContract checks it.
//   - It has no security requirements. Authentication is the auth
//     middleware's job, and kin-openapi reads the whole body into memory
//     once more to offer it to an authentication function.
func loadRequestView(doc []byte) (*openapi3.T, error) {
	view, err := parseSpec(doc)
	if err != nil {
		return nil, err
	}
	view.OpenAPI = requestViewVersion
	view.Security = nil
	for _, item := range view.Paths.Map() {
		for _, op := range item.Operations() {
			op.Security = nil
		}
	}
	return view, nil
}

// openAPIValidator checks each request against the contract with
// kin-openapi's openapi3filter and returns *Problem errors: 415 for a body
// that is not application/json, 400 (malformedProblem) for an empty body
// or one that is not JSON, 413 when the body limit cuts the body short and
// 422 (validationProblem) with one FieldError per violation otherwise.
// FieldError.Field is a JSON Pointer into the body, or "query:NAME",
// "path:NAME", "header:NAME" for parameters (as openapi.yaml's Problem
// schema says). Routes not in the contract pass through. Authentication is
// not done here. The body is read once and put back for the handler.
//
// missing, keyed by operationId, names what a body lacks that the
// contract cannot say is required (one field of several, say); a 422 gets
// those fields too, so one answer names every missing field.
func openAPIValidator(spec *openapi3.T, router routers.Router, missing map[string]func(body []byte) []FieldError) echo.MiddlewareFunc {
	v := newRequestValidator(spec)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			route, params, err := router.FindRoute(req)
			if err != nil {
				return next(c) // not in the contract: echo answers 404 or 405
			}
			if rb := route.Operation.RequestBody; rb != nil && !takesMediaType(rb.Value, req.Header.Get(echo.HeaderContentType)) {
				return newProblem(http.StatusUnsupportedMediaType, "unsupported-media-type",
					"Unsupported media type", "send the body as "+strings.Join(slices.Sorted(maps.Keys(rb.Value.Content)), " or "))
			}
			input := &openapi3filter.RequestValidationInput{
				Request: req, PathParams: params, Route: route,
			}
			if err := v.validate(req.Context(), input); err != nil {
				return withMissing(requestProblem(err), req, missing[route.Operation.OperationID])
			}
			return next(c)
		}
	}
}

// withMissing adds to err, when it is a 422, the fields missing finds
// absent from the request's body that err does not already name.
func withMissing(err error, req *http.Request, missing func([]byte) []FieldError) error {
	var p *Problem
	if missing == nil || !errors.As(err, &p) || p.Status != http.StatusUnprocessableEntity {
		return err
	}
	body, rerr := bodyBytes(req)
	if rerr != nil {
		return err
	}
	fields := p.Errors
	for _, f := range missing(body) {
		if !slices.ContainsFunc(p.Errors, func(g FieldError) bool { return g.Field == f.Field }) {
			fields = append(fields, f)
		}
	}
	return invalidProblem(fields)
}

// requestValidator runs openapi3filter's request validation, with the
// JSON body decoded by the fast path (decodeExact's decoder) when it can:
// openapi3filter decodes bodies with encoding/json into generic values, which
// took a third of the API's time on 10 KB messages.
type requestValidator struct {
	params *openapi3filter.Options           // everything but the body
	all    *openapi3filter.Options           // the body too: openapi3filter's own way
	schema []openapi3.SchemaValidationOption // the body's schema check, as openapi3filter does it
}

func newRequestValidator(spec *openapi3.T) *requestValidator {
	all := &openapi3filter.Options{
		MultiError:              true,
		AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
		SkipSettingDefaults:     true, // handlers apply defaults; the body stays as sent
		SchemaValidationOptions: spec.GetSchemaValidationOptions(),
	}
	params := *all
	params.ExcludeRequestBody = true
	schema := append([]openapi3.SchemaValidationOption{openapi3.VisitAsRequest(), openapi3.MultiErrors()},
		spec.GetSchemaValidationOptions()...)
	return &requestValidator{params: &params, all: all, schema: schema}
}

// validate is openapi3filter.ValidateRequest with all's options: the
// parameters' errors and the body's, together.
func (v *requestValidator) validate(ctx context.Context, input *openapi3filter.RequestValidationInput) error {
	input.Options = v.params
	var errs openapi3.MultiError
	if err := openapi3filter.ValidateRequest(ctx, input); err != nil {
		errs = appendErrors(errs, err)
	}
	if rb := input.Route.Operation.RequestBody; rb != nil && rb.Value != nil {
		if err := v.validateBody(ctx, input, rb.Value); err != nil {
			errs = appendErrors(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// validateBody checks a JSON body against its schema. The body is read
// once and put back for the handler. A body the fast decoder refuses
// (not JSON, a repeated name, invalid UTF-8, a number out of range) and
// any case out of the ordinary go to openapi3filter.ValidateRequestBody,
// so its verdicts and messages stay openapi3filter's own.
func (v *requestValidator) validateBody(ctx context.Context, input *openapi3filter.RequestValidationInput, rb *openapi3.RequestBody) error {
	req := input.Request
	media := rb.Content.Get(req.Header.Get(echo.HeaderContentType))
	if req.Body == nil || req.Body == http.NoBody || media == nil || media.Schema == nil || media.Schema.Value == nil {
		input.Options = v.all
		return openapi3filter.ValidateRequestBody(ctx, input, rb)
	}
	data, err := bufferBody(req)
	if err != nil {
		return &openapi3filter.RequestError{Input: input, RequestBody: rb, Reason: "reading failed", Err: err}
	}
	var value any
	if len(data) == 0 || jsonv2.Unmarshal(data, &value) != nil {
		input.Options = v.all
		return openapi3filter.ValidateRequestBody(ctx, input, rb)
	}
	if err := media.Schema.Value.VisitJSON(value, v.schema...); err != nil {
		return &openapi3filter.RequestError{Input: input, RequestBody: rb, Reason: "doesn't match schema", Err: err}
	}
	return nil
}

// appendErrors adds err to errs; a MultiError (not one inside a
// RequestError) adds its members.
func appendErrors(errs openapi3.MultiError, err error) openapi3.MultiError {
	if me, ok := err.(openapi3.MultiError); ok {
		return append(errs, me...)
	}
	return append(errs, err)
}

// takesMediaType reports whether a Content-Type header names one of the
// media types rb declares (parameters such as charset allowed).
func takesMediaType(rb *openapi3.RequestBody, contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	return err == nil && rb != nil && rb.Content[mediaType] != nil
}

// requestProblem turns what openapi3filter.ValidateRequest returned into
// the problem the client sees. A body that cannot be read or parsed stops
// everything; otherwise every violation becomes one FieldError.
func requestProblem(err error) error {
	errs := []error{err}
	var me openapi3.MultiError
	if errors.As(err, &me) {
		errs = me
	}
	var fields []FieldError
	for _, e := range errs {
		var re *openapi3filter.RequestError
		if !errors.As(e, &re) {
			return fmt.Errorf("validate request: %w", e)
		}
		if re.RequestBody != nil {
			if p := bodyProblem(re); p != nil {
				return p
			}
		}
		fields = append(fields, fieldErrors(re)...)
	}
	return invalidProblem(fields)
}

// invalidProblem is the 422 for fields, sorted so answers are stable.
func invalidProblem(fields []FieldError) *Problem {
	slices.SortStableFunc(fields, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) })
	fields = slices.Compact(fields)
	p := validationProblem(fields)
	if !slices.ContainsFunc(fields, func(f FieldError) bool { return strings.HasPrefix(f.Field, "/") || f.Field == "" }) {
		p.Detail = "the request has invalid parameters; see errors"
	}
	return p
}

// bodyProblem is the problem for a body that could not be read or parsed,
// or nil when the body parsed and only broke the schema.
func bodyProblem(re *openapi3filter.RequestError) *Problem {
	var tooLarge *http.MaxBytesError
	var he *echo.HTTPError
	var parseErr *openapi3filter.ParseError
	switch {
	case errors.As(re.Err, &he) && he.Code == http.StatusRequestEntityTooLarge,
		errors.As(re.Err, &tooLarge):
		return tooLargeProblem("the request body is over the size limit")
	case errors.Is(re.Err, openapi3filter.ErrInvalidRequired):
		return malformedProblem("the request body is empty")
	case errors.As(re.Err, &parseErr):
		// The cause is encoding/json's, naming at most one character of the body.
		return malformedProblem("the request body is not valid JSON: " + parseErr.RootCause().Error())
	case re.Reason == "reading failed":
		return malformedProblem("the request body could not be read")
	case re.Err == nil:
		// No schema error inside: an unexpected content type or the like.
		return malformedProblem("the request body does not match the contract")
	}
	return nil
}

// pointerEscaper escapes one JSON Pointer reference token (RFC 6901 §3).
var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// fieldErrors names every violation inside re, which is about one
// parameter or about the body.
func fieldErrors(re *openapi3filter.RequestError) []FieldError {
	if p := re.Parameter; p != nil {
		return paramErrors(p.In+":"+p.Name, re.Err)
	}
	var out []FieldError
	for _, se := range schemaErrors(re.Err) {
		out = append(out, bodyFieldError(se))
	}
	if len(out) == 0 {
		out = append(out, FieldError{Field: "", Message: "does not match the contract"})
	}
	return out
}

// paramErrors names what is wrong with the parameter called field.
func paramErrors(field string, err error) []FieldError {
	var parseErr *openapi3filter.ParseError
	switch {
	case errors.Is(err, openapi3filter.ErrInvalidRequired):
		return []FieldError{{Field: field, Message: "is required"}}
	case errors.Is(err, openapi3filter.ErrInvalidEmptyValue):
		return []FieldError{{Field: field, Message: "must not be empty"}}
	case errors.As(err, &parseErr):
		// ParseError.Error() repeats the value; keep only the reason.
		msg := "has an invalid value"
		if parseErr.Reason != "" {
			msg = "is " + parseErr.Reason // "is an invalid integer"
		}
		return []FieldError{{Field: field, Message: msg}}
	}
	var out []FieldError
	for _, se := range schemaErrors(err) {
		msg := se.Reason
		if se.SchemaField == "format" && se.Schema != nil {
			msg = formatMessage(se.Schema.Format)
			if v, ok := se.Value.(string); ok && se.Schema.Format == "date-time" {
				msg = dateTimeMessage(v)
			}
		}
		out = append(out, FieldError{Field: field, Message: msg})
	}
	if len(out) == 0 {
		out = append(out, FieldError{Field: field, Message: "has an invalid value"})
	}
	return out
}

// schemaErrors flattens the schema errors inside err.
func schemaErrors(err error) []*openapi3.SchemaError {
	var me openapi3.MultiError
	if errors.As(err, &me) {
		var out []*openapi3.SchemaError
		for _, e := range me {
			out = append(out, schemaErrors(e)...)
		}
		return out
	}
	var se *openapi3.SchemaError
	if errors.As(err, &se) {
		return []*openapi3.SchemaError{se}
	}
	return nil
}

// bodyFieldError is the FieldError for one schema violation in the body.
// kin-openapi reports an unknown property at its parent object, so its
// name is appended to the pointer; a missing one is already at its own.
func bodyFieldError(se *openapi3.SchemaError) FieldError {
	tokens := se.JSONPointer()
	msg := se.Reason
	var name string
	switch {
	case se.SchemaField == "properties" && scanName(se.Reason, "property %q is unsupported", &name):
		tokens, msg = append(tokens, name), "unknown property"
	case se.SchemaField == "required" && scanName(se.Reason, "property %q is missing", &name):
		msg = "is required"
	case se.SchemaField == "format" && se.Schema != nil:
		msg = formatMessage(se.Schema.Format)
	}
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(pointerEscaper.Replace(t))
	}
	return FieldError{Field: b.String(), Message: msg}
}

// formatMessage says what a value of a string format looks like; kin's
// own message quotes the whole regular expression.
func formatMessage(format string) string {
	switch format {
	case "date-time":
		return "must be an RFC 3339 date-time such as 2026-12-01T09:00:00Z"
	case "uuid":
		return "must be a UUID"
	case "uri":
		return "must be an absolute URI"
	}
	return "must be in the format " + format
}

// dateTimeMessage says what the date-time parameter v should look like.
// A space in it is almost always an offset's "+" sent unencoded, which a
// query string decodes as a space, so the message says how to send it.
func dateTimeMessage(v string) string {
	msg := formatMessage("date-time")
	if strings.Contains(v, " ") {
		msg += `; send a "+" in a query as %2B (a bare "+" means a space)`
	}
	return msg
}

// scanName reads the quoted property name out of a kin-openapi reason.
func scanName(reason, format string, name *string) bool {
	n, err := fmt.Sscanf(reason, format, name)
	return err == nil && n == 1
}
