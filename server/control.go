package server

import (
	"github.com/mtad/mtad/actors"
	"github.com/mtad/mtad/admin"
)

var _ admin.Control = (*actors.Engine)(nil)

// control is what the management API's write operations steer: the engine.
func (s *Server) control() admin.Control { return s.engine }
