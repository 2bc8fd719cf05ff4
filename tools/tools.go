//go:build tools

// Package tools pins the command-line tools this repository builds with:
// Packer itself (for acceptance tests) and packer-sdc (code generation, docs).
// `make tools` builds them into ../.tools/bin; see the GNUmakefile.
package tools

import (
	_ "github.com/hashicorp/packer"
	_ "github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc"
)
