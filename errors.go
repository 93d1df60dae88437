package wspush

import "errors"

// Sentinel errors shared by every layer. The HTTP API and the protocols map
// each to a stable error code (see Code) and to an HTTP status.
var (
	// ErrBadRequest: the request or command is malformed or misses a field.
	ErrBadRequest = errors.New("bad request")
	// ErrUnknownOp: the command names an operation the protocol lacks.
	ErrUnknownOp = errors.New("unknown operation")
	// ErrUnauthorized: an API key is required and missing or wrong.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the caller may not do this (for example publish from a
	// client in a namespace without client_publish).
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: no such route, channel namespace or resource.
	ErrNotFound = errors.New("not found")
	// ErrTooLarge: a frame, body or value exceeds its configured limit.
	ErrTooLarge = errors.New("too large")
	// ErrRateLimited: the caller sends faster than allowed.
	ErrRateLimited = errors.New("rate limited")
	// ErrUnavailable: a dependency (the broker) cannot serve now; retry.
	ErrUnavailable = errors.New("unavailable")
	// ErrInternal: a bug or an unexpected failure on the server side.
	ErrInternal = errors.New("internal error")
)

// Error is an error with a stable code and a message meant for the caller.
// Its Unwrap returns the sentinel the code stands for, so errors.Is works.
type Error struct {
	Kind    error  // one of the sentinels above
	Message string // human-readable detail, safe to show to the caller
}

// Errorf returns an *Error of the given kind with a message.
func Errorf(kind error, msg string) *Error { return &Error{Kind: kind, Message: msg} }

func (e *Error) Error() string { return e.Message }

// Unwrap returns the sentinel error of e.
func (e *Error) Unwrap() error { return e.Kind }

// codes maps each sentinel to its stable code. Clients rely on these slugs.
var codes = []struct {
	err  error
	code string
}{
	{ErrBadRequest, "bad_request"},
	{ErrUnknownOp, "unknown_op"},
	{ErrUnauthorized, "unauthorized"},
	{ErrForbidden, "forbidden"},
	{ErrNotFound, "not_found"},
	{ErrTooLarge, "too_large"},
	{ErrRateLimited, "rate_limited"},
	{ErrUnavailable, "unavailable"},
	{ErrInternal, "internal"},
}

// Code returns the stable code of err ("bad_request", "forbidden", ...), or
// "internal" for an error that wraps none of the sentinels.
func Code(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "internal"
}

// ErrorMessage returns the text to show a caller for err: the message of an
// *Error, or a generic text that leaks nothing for other errors.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.err.Error()
		}
	}
	return ErrInternal.Error()
}
