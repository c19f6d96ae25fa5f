package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

//go:embed default.toml
var defaultTOML []byte

// DefaultFile is the name errors use for the embedded default.
const DefaultFile = "(embedded default)"

// DefaultText returns the embedded default configuration, a commented
// example of every key.
func DefaultText() []byte { return bytes.Clone(defaultTOML) }

// Default returns the embedded default configuration.
func Default() (*Config, error) { return Parse(DefaultFile, defaultTOML) }

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse validates data; file names it in errors.
func Parse(file string, data []byte) (*Config, error) {
	var raw rawConfig
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("config %s: %s", file, decodeProblem(err))
	}
	cfg, errs := raw.validate()
	if len(errs) > 0 {
		wrapped := make([]error, len(errs))
		for i, e := range errs {
			wrapped[i] = fmt.Errorf("config %s: %w", file, e)
		}
		return nil, errors.Join(wrapped...)
	}
	cfg.File = file
	return cfg, nil
}

// decodeProblem renders a TOML error with its line and key.
func decodeProblem(err error) string {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var keys []string
		for _, e := range strict.Errors {
			line, _ := e.Position()
			keys = append(keys, fmt.Sprintf("line %d: unknown key %s", line, strings.Join(e.Key(), ".")))
		}
		return strings.Join(keys, "; ")
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if k := de.Key(); len(k) > 0 {
			return fmt.Sprintf("line %d column %d: key %s: %s", line, col, strings.Join(k, "."), msg)
		}
		return fmt.Sprintf("line %d column %d: %s", line, col, msg)
	}
	return err.Error()
}
