package server

import (
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/mtad/mtad/admin"
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

// ManagementAddr is where the management listener is, or nil.
func (s *Server) ManagementAddr() net.Addr { return s.mgmtAddr }
