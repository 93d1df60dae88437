package wspush_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/wspush/wspush"
)

func TestCodeAndErrorMessageOfSentinels(t *testing.T) {
	for _, tt := range []struct {
		err  error
		code string
	}{
		{wspush.ErrBadRequest, "bad_request"},
		{wspush.ErrUnknownOp, "unknown_op"},
		{wspush.ErrUnauthorized, "unauthorized"},
		{wspush.ErrForbidden, "forbidden"},
		{wspush.ErrNotFound, "not_found"},
		{wspush.ErrTooLarge, "too_large"},
		{wspush.ErrRateLimited, "rate_limited"},
		{wspush.ErrUnavailable, "unavailable"},
		{wspush.ErrInternal, "internal"},
	} {
		t.Run(tt.code, func(t *testing.T) {
			if got := wspush.Code(tt.err); got != tt.code {
				t.Errorf("Code(%v) = %q, want %q", tt.err, got, tt.code)
			}
			if got := wspush.ErrorMessage(tt.err); got != tt.err.Error() {
				t.Errorf("ErrorMessage(%v) = %q, want %q", tt.err, got, tt.err.Error())
			}

			// Wrapped with %w: the code survives, the wrapping text does not leak.
			wrapped := fmt.Errorf("redis 10.0.0.7:6379: secret detail: %w", tt.err)
			if got := wspush.Code(wrapped); got != tt.code {
				t.Errorf("Code(wrapped) = %q, want %q", got, tt.code)
			}
			if got := wspush.ErrorMessage(wrapped); got != tt.err.Error() {
				t.Errorf("ErrorMessage(wrapped) = %q, want %q", got, tt.err.Error())
			}

			// An *Error carries the sentinel's code and its own message.
			e := wspush.Errorf(tt.err, "detail for the caller")
			if got := wspush.Code(e); got != tt.code {
				t.Errorf("Code(Errorf) = %q, want %q", got, tt.code)
			}
			if !errors.Is(e, tt.err) {
				t.Errorf("errors.Is(Errorf(%v), %v) = false", tt.err, tt.err)
			}
			if got := wspush.ErrorMessage(e); got != "detail for the caller" {
				t.Errorf("ErrorMessage(Errorf) = %q", got)
			}
			if got := e.Error(); got != "detail for the caller" {
				t.Errorf("Errorf(...).Error() = %q", got)
			}
			// ... also when wrapped again.
			ww := fmt.Errorf("handler: %w", e)
			if got := wspush.Code(ww); got != tt.code {
				t.Errorf("Code(wrapped *Error) = %q, want %q", got, tt.code)
			}
			if got := wspush.ErrorMessage(ww); got != "detail for the caller" {
				t.Errorf("ErrorMessage(wrapped *Error) = %q", got)
			}
		})
	}
}

func TestSentinelsAreDistinct(t *testing.T) {
	all := []error{wspush.ErrBadRequest, wspush.ErrUnknownOp, wspush.ErrUnauthorized, wspush.ErrForbidden,
		wspush.ErrNotFound, wspush.ErrTooLarge, wspush.ErrRateLimited, wspush.ErrUnavailable, wspush.ErrInternal}
	codes := map[string]bool{}
	for _, err := range all {
		c := wspush.Code(err)
		if codes[c] {
			t.Errorf("code %q used twice", c)
		}
		codes[c] = true
		if err.Error() != strings.ToLower(err.Error()) {
			t.Errorf("error string %q is not lower case", err)
		}
	}
}

func TestCodeAndErrorMessageOfUnknownErrors(t *testing.T) {
	for _, err := range []error{
		errors.New("open /etc/wspush/secret.key: permission denied"),
		fmt.Errorf("dial tcp 10.0.0.7:6379: %w", io.ErrUnexpectedEOF),
		context.DeadlineExceeded,
		&wspush.Error{Message: "kind missing"}, // an *Error without a sentinel still has a message
		nil,
	} {
		if got := wspush.Code(err); got != "internal" {
			t.Errorf("Code(%v) = %q, want internal", err, got)
		}
	}
	for _, err := range []error{
		errors.New("open /etc/wspush/secret.key: permission denied"),
		fmt.Errorf("dial tcp 10.0.0.7:6379: %w", io.ErrUnexpectedEOF),
		context.DeadlineExceeded,
	} {
		got := wspush.ErrorMessage(err)
		if got != wspush.ErrInternal.Error() {
			t.Errorf("ErrorMessage(%v) = %q, want the generic %q", err, got, wspush.ErrInternal.Error())
		}
		for _, leak := range []string{"secret", "10.0.0.7", "EOF", "deadline"} {
			if strings.Contains(got, leak) {
				t.Errorf("ErrorMessage(%v) = %q leaks %q", err, got, leak)
			}
		}
	}
	if got := wspush.ErrorMessage(&wspush.Error{Message: "kind missing"}); got != "kind missing" {
		t.Errorf("ErrorMessage(*Error without kind) = %q", got)
	}
}

func TestHandlerFunc(t *testing.T) {
	var got *wspush.Message
	var h wspush.Handler = wspush.HandlerFunc(func(m *wspush.Message) { got = m })
	m := &wspush.Message{Channel: "chat", Data: []byte(`1`)}
	h.HandleMessage(m)
	if got != m {
		t.Fatalf("HandlerFunc passed %p, want %p", got, m)
	}
}
