// Package web holds the pages wspush serves, embedded in the binary: the
// group-chat demo and the JavaScript client it uses. Nothing is loaded from
// outside the server.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS is the site root: index.html (the chat page), wspush.js (the client).
var FS, _ = fs.Sub(static, "static")
