package submission

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
)

var (
	errNoTLSConfig = errors.New("submission: ServeTLS needs Config.TLSConfig")
	errNoCert      = errors.New("submission: Config.TLSConfig has no certificate")
)

// LoadTLSConfig reads a PEM certificate chain (leaf first) and its PEM
// private key and returns a server configuration for Config.TLSConfig
// that accepts TLS 1.2 and later. Errors name the file at fault. The
// files are read once: a renewed certificate needs a restart.
func LoadTLSConfig(certFile, keyFile string) (*tls.Config, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("submission: read TLS certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("submission: read TLS key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("submission: TLS certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// checkTLSConfig refuses a configuration that could not complete a single
// handshake; nil (no TLS) is fine.
func checkTLSConfig(c *tls.Config) error {
	if c == nil || len(c.Certificates) > 0 || c.GetCertificate != nil || c.GetConfigForClient != nil {
		return nil
	}
	return errNoCert
}
