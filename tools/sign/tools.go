//go:build tools

// Package tools pins cosign, the verifier the signing tests use (cosign
// verify and verify-blob with a public key), in a module of its own so its
// dependencies never move the plugin's.
package tools

import _ "github.com/sigstore/cosign/v2/cmd/cosign"
