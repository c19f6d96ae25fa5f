package server

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/mtad/mtad/admin"
	"github.com/mtad/mtad/inject"
	"github.com/mtad/mtad/metrics"
)

// startManagement serves /metrics and /debug/pprof/ on server.management.
func (s *Server) startManagement() error {
	m := s.cfg.Server.Management
	if m.Bind == "" {
		return nil
	}
	l, err := net.Listen("tcp", m.Bind)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/api/v1/", admin.Handler(s.journal, s.control()))
	mux.HandleFunc("POST /api/v1/reload", s.serveReload)
	sc := s.cfg.Session
	mux.Handle("POST /api/v1/inject", inject.New(inject.Config{Hostname: s.cfg.Server.Hostname,
		MaxMessageSize: sc.MaxMessageSize, CheckRcpt: s.checkRcpt, TakeMessage: s.smtp.TakeSenderMessage},
		&acceptor{s}, s.log))
	s.mgmt = &http.Server{Handler: bearer(m.Token, mux), ReadHeaderTimeout: 10 * time.Second}
	s.mgmtAddr = l.Addr()
	go func() {
		if err := s.mgmt.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("management listener stopped", "err", err)
		}
	}()
	s.log.Info("management listening", "addr", l.Addr().String())
	return nil
}

// bearer requires "Authorization: Bearer <token>" when token is set.
func bearer(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mtad"`)
			http.Error(w, "a bearer token is required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// serveReload is POST /api/v1/reload: 200 {"reloaded":true}, or 422 with
// the reason the new configuration was refused (the old one stays).
func (s *Server) serveReload(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if err := s.Reload(); err != nil {
		w.WriteHeader(http.StatusUnprocessableEntity)
		_ = json.NewEncoder(w).Encode(map[string]any{"reloaded": false, "error": err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"reloaded": true, "file": s.config().File})
}

// ManagementAddr is where the management listener is, or nil.
func (s *Server) ManagementAddr() net.Addr { return s.mgmtAddr }
