package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// API publishes through a wspush server's HTTP API.
type API struct {
	base string
	key  string
	// HTTP is the client requests go through; http.DefaultClient if nil.
	HTTP *http.Client
}

// NewAPI returns an API client for the server at baseURL
// ("http://host:7777"); apiKey may be empty for a server without one.
func NewAPI(baseURL, apiKey string) *API {
	return &API{base: strings.TrimRight(baseURL, "/"), key: apiKey}
}

// APIError is an error answer of the server.
type APIError struct {
	Status  int    // HTTP status
	Code    string // stable code: bad_request, unauthorized, ...
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("wspush: %d %s: %s", e.Status, e.Code, e.Message)
}

// Publish publishes data to channel. data is marshalled to JSON unless it
// is a json.RawMessage, which is sent as it is.
func (a *API) Publish(ctx context.Context, channel string, data any) error {
	return a.PublishMany(ctx, []string{channel}, data)
}

// PublishMany publishes data to several channels in one request.
func (a *API) PublishMany(ctx context.Context, channels []string, data any) error {
	raw, err := marshal(data)
	if err != nil {
		return err
	}
	body := struct {
		Channel  string          `json:"channel,omitempty"`
		Channels []string        `json:"channels,omitempty"`
		Data     json.RawMessage `json:"data"`
	}{Data: raw}
	if len(channels) == 1 {
		body.Channel = channels[0]
	} else {
		body.Channels = channels
	}
	return a.post(ctx, "/api/publish", body)
}

// Broadcast sends data to every connection of every node.
func (a *API) Broadcast(ctx context.Context, data any) error {
	raw, err := marshal(data)
	if err != nil {
		return err
	}
	return a.post(ctx, "/api/broadcast", struct {
		Data json.RawMessage `json:"data"`
	}{raw})
}

func marshal(data any) (json.RawMessage, error) {
	if raw, ok := data.(json.RawMessage); ok {
		if !json.Valid(raw) {
			return nil, fmt.Errorf("wspush: data is not valid JSON")
		}
		return raw, nil
	}
	return json.Marshal(data)
}

func (a *API) post(ctx context.Context, path string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	u, err := url.JoinPath(a.base, path)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	hc := a.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	code, msg := errorBody(respBody)
	return &APIError{Status: resp.StatusCode, Code: code, Message: msg}
}

// errorBody reads the server's JSON error answer; a body that is not one
// is "http_error" with the body as its message.
func errorBody(body []byte) (code, message string) {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Code == "" {
		return "http_error", strings.TrimSpace(string(body))
	}
	return e.Error.Code, e.Error.Message
}
