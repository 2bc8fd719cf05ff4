//go:build !unix

package testutil

import "testing"

// UnprivilegedEnv is set to "1" in the child that Unprivileged starts.
const UnprivilegedEnv = "OSIMAGE_TEST_UNPRIVILEGED"

// Unprivileged returns true: without Unix users there is nothing to drop.
func Unprivileged(t *testing.T) bool { return true }
