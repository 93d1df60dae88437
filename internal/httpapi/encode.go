package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/wspush/wspush"
)

// encode writes v as a JSON response with status. Headers go before
// WriteHeader.
func encode(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// errorBody is the JSON of every error response:
// {"error":{"code":"bad_request","message":"..."}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// statusError is an error that is only HTTP's: it carries its own status
// and code (405 and 415 have no sentinel in the domain).
type statusError struct {
	status int
	code   string
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// statuses maps the domain's errors to HTTP statuses.
var statuses = []struct {
	err    error
	status int
}{
	{wspush.ErrBadRequest, http.StatusBadRequest},
	{wspush.ErrUnknownOp, http.StatusBadRequest},
	{wspush.ErrUnauthorized, http.StatusUnauthorized},
	{wspush.ErrForbidden, http.StatusForbidden},
	{wspush.ErrNotFound, http.StatusNotFound},
	{wspush.ErrTooLarge, http.StatusRequestEntityTooLarge},
	{wspush.ErrRateLimited, http.StatusTooManyRequests},
	{wspush.ErrUnavailable, http.StatusServiceUnavailable},
}

// writeError answers with err's status, code and message.
func writeError(w http.ResponseWriter, err error) {
	var se *statusError
	if errors.As(err, &se) {
		encode(w, se.status, errorBody{errorDetail{se.code, se.msg}})
		return
	}
	status := http.StatusInternalServerError
	for _, s := range statuses {
		if errors.Is(err, s.err) {
			status = s.status
			break
		}
	}
	encode(w, status, errorBody{errorDetail{wspush.Code(err), wspush.ErrorMessage(err)}})
}
