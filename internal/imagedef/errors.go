// Design: every problem is a *ConfigError naming file, line, column and key, with a Kind for errors.Is;
// warnings have the same fields and never stop loading.

package imagedef

import (
	"errors"
	"fmt"
	"strings"
)

// Kinds of errors. Every error returned by Load and Expand is a *ConfigError
// whose Kind is one of these, so callers and tests can tell them apart with
// errors.Is and read the location with errors.As.
var (
	ErrRead              = errors.New("cannot read file")
	ErrSyntax            = errors.New("TOML syntax error")
	ErrType              = errors.New("wrong type")
	ErrValue             = errors.New("invalid value")
	ErrUnknownValue      = errors.New("unknown value")
	ErrIncludeMissing    = errors.New("included file does not exist")
	ErrIncludeCycle      = errors.New("include cycle")
	ErrIncludeEscape     = errors.New("include escapes the tree root")
	ErrDuplicateImage    = errors.New("duplicate image name")
	ErrDuplicateTarget   = errors.New("duplicate publish target")
	ErrDefinitionMissing = errors.New("image definition file does not exist")
	ErrCombination       = errors.New("invalid combination of dimension values")
	ErrDuplicateKey      = errors.New("duplicate variant key")
	ErrUnknownDistro     = errors.New("unknown distro or distro version")
	ErrUnmatchedLabel    = errors.New("publish label matches no target")
	ErrTargets           = errors.New("publish target problem")
	ErrNoVariants        = errors.New("no variants")
	ErrTooLarge          = errors.New("matrix too large")
)

// ConfigError reports a problem in the definition tree: where it is (file,
// line, column, key), what was found and what was expected (Msg), and which
// kind of problem it is (Kind, one of the Err* values).
type ConfigError struct {
	File string // file that holds the problem; "" when it is not in one file
	Line int    // 1-based line, 0 when unknown
	Col  int    // 1-based column (bytes), 0 when unknown
	Key  string // dotted key path, e.g. images.vm-base.variants.architectures[1]
	Msg  string // what was found and what was expected
	Kind error  // one of the Err* values
	Err  error  // underlying cause (I/O or decoder error), may be nil
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
			if e.Col > 0 {
				fmt.Fprintf(&b, ":%d", e.Col)
			}
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap makes errors.Is match both the kind and the underlying cause.
func (e *ConfigError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Warning is a problem that does not stop loading or expansion, such as an
// include glob that matches nothing. Its fields mean the same as ConfigError's.
type Warning struct {
	File string
	Line int
	Col  int
	Key  string
	Msg  string
}

func (w Warning) String() string {
	e := ConfigError{File: w.File, Line: w.Line, Col: w.Col, Key: w.Key, Msg: w.Msg}
	return e.Error()
}
