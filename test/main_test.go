// Package test holds the acceptance tests: each drives the real packer
// binary with this plugin installed, on templates, and checks the outputs.
package test

import (
	"os"
	"testing"

	"github.com/osimage/packer-plugin-osimage/test/acc"
)

func TestMain(m *testing.M) {
	code := m.Run()
	acc.Cleanup()
	os.Exit(code)
}
