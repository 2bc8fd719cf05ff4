//go:build tools

// Package tools pins the OCI clients the tests and benchmarks read our
// images with: ironcore-image (the consumer the format is for), crane and
// oras. It is its own module so their dependencies never move Packer's
// (../go.mod). scripts/tools.sh builds them into ../../.tools/bin.
package tools

import (
	_ "github.com/google/go-containerregistry/cmd/crane"
	_ "github.com/ironcore-dev/ironcore-image/cmd/ironcore-image"
	_ "oras.land/oras/cmd/oras"
)
