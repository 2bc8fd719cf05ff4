// Package test holds the acceptance tests: each drives the real packer
// binary with this plugin installed, on templates, and checks the outputs.
//
// Every test calls t.Parallel(): go test runs -parallel of them at once
// (GOMAXPROCS by default). TestPackerBuildsARealKiwiDisk starts its packer
// build (minutes of KIWI) before it calls t.Parallel, so the build runs
// beside the other tests from the start instead of after them; each test
// checks only what it made (its own directories, TMPDIR, processes, ports).
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
