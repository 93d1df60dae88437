package httpapi

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/wspush/wspush"
)

// decodeObject walks the top-level JSON object b, calling field for each
// member with its key and raw value. It is the publish path's decoder: one
// validating pass (json.Valid, which allocates nothing) and one walk that
// slices values out of b without copying them. An unknown field is an
// error, so that a typo ("chanel") is not silently ignored.
func decodeObject(b []byte, field func(key string, value []byte) (known bool, err error)) error {
	if err := validJSON(b, wspush.MaxDataDepth+1); err != nil { // +1: the body's own object
		return err
	}
	i := skipSpace(b, 0)
	if b[i] != '{' {
		return wspush.Errorf(wspush.ErrBadRequest, "malformed JSON body: want an object")
	}
	i = skipSpace(b, i+1)
	for b[i] != '}' {
		end := stringEnd(b, i)
		key, err := unquote(b[i:end])
		if err != nil {
			return err
		}
		i = skipSpace(b, end) // at ':'
		i = skipSpace(b, i+1) // at the value
		end = valueEnd(b, i)  // b is valid, so the value ends
		known, err := field(key, b[i:end])
		if err != nil {
			return err
		}
		if !known {
			return wspush.Errorf(wspush.ErrBadRequest, "malformed JSON body: unknown field "+strconv.Quote(key))
		}
		i = skipSpace(b, end)
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return nil
}

// validJSON checks that b is one JSON value in UTF-8. encoding/json lets
// invalid UTF-8 through, but a text frame carrying it would make browsers
// drop the connection of every subscriber.
func validJSON(b []byte, depth int) error {
	if !utf8.Valid(b) {
		return wspush.Errorf(wspush.ErrBadRequest, "body is not valid UTF-8")
	}
	if !json.Valid(b) {
		return wspush.Errorf(wspush.ErrBadRequest, "malformed JSON body")
	}
	if !wspush.DataDepthWithin(b, depth) {
		return wspush.Errorf(wspush.ErrBadRequest, "data nested deeper than "+strconv.Itoa(wspush.MaxDataDepth)+" levels")
	}
	return nil
}

// stringField decodes a JSON string value, or says that key is not one.
func stringField(key string, v []byte) (string, error) {
	if len(v) == 0 || v[0] != '"' {
		return "", wspush.Errorf(wspush.ErrBadRequest, "malformed JSON body: "+strconv.Quote(key)+" must be a string")
	}
	return unquote(v)
}

// unquote decodes a JSON string, fast when it holds no escapes.
func unquote(v []byte) (string, error) {
	inner := v[1 : len(v)-1]
	for _, c := range inner {
		if c == '\\' {
			var s string
			err := json.Unmarshal(v, &s)
			return s, err
		}
	}
	return string(inner), nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the string that starts at b[i] == '"'.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// valueEnd returns the index after the valid JSON value that starts at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}
