package testsink

// Close stops the sink now: later connections are refused.
func (s *Sink) Close() { _ = s.srv.Close() }
