package bidder

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"strings"
)

// The status page: one static HTML file with its CSS and JavaScript inline
// (no CDN, no framework), served at GET / on the admin listener. It holds no
// data: its script fetches GET /admin/status every few seconds (with the
// admin token the operator gives it, when the listener has tokens) and draws
// the tables and the inline SVG charts; its buttons post to /admin/pause and
// /admin/resume. A Content-Security-Policy allows exactly its own inline
// script and style and requests to this origin.

//go:embed statuspage/index.html
var statusPageHTML []byte

// statusPageCSP is the page's Content-Security-Policy, with the hashes of
// its inline <script> and <style> blocks.
var statusPageCSP = "default-src 'none'; script-src " + inlineHash(statusPageHTML, "script") +
	"; style-src " + inlineHash(statusPageHTML, "style") +
	"; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// inlineHash is the CSP source of the first <tag> block's content.
func inlineHash(page []byte, tag string) string {
	s := string(page)
	open, end := strings.Index(s, "<"+tag+">"), strings.Index(s, "</"+tag+">")
	if open < 0 || end < open {
		panic("status page: no <" + tag + "> block") // the embedded file is broken
	}
	sum := sha256.Sum256([]byte(s[open+len(tag)+2 : end]))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

func serveStatusPage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", statusPageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	w.Write(statusPageHTML)
}
