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

// FS is the site root:
//
//	index.html, chat.js, chat.css, favicon.svg   the group chat (群聊天室)
//	wspush.js                                    the JavaScript client, a classic script
//	wspush.mjs                                   the same client as an ES module
var FS, _ = fs.Sub(static, "static")
