// Package httpjson writes the JSON answers of mtad's HTTP APIs (the
// management API and HTTP injection), so they look alike.
package httpjson

import (
	"encoding/json"
	"net/http"
)

// Write answers with status code and v as indented JSON.
func Write(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to tell it
}
