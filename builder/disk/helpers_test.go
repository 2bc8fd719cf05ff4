package disk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/kiwi"
)

// testUI records what the builder says; safe for the KIWI runner's
// output goroutine.
type testUI struct {
	mu       sync.Mutex
	lines    []string
	errors   []string
	progress bool
}

var _ packersdk.Ui = (*testUI)(nil)

func (u *testUI) Ask(string) (string, error)          { return "", nil }
func (u *testUI) Askf(string, ...any) (string, error) { return "", nil }
func (u *testUI) Machine(string, ...string)           {}
func (u *testUI) Sayf(format string, args ...any)     { u.Say(fmt.Sprintf(format, args...)) }
func (u *testUI) Errorf(format string, args ...any)   { u.Error(fmt.Sprintf(format, args...)) }
func (u *testUI) Message(s string)                    { u.Say("  " + s) }
func (u *testUI) Say(s string)                        { u.mu.Lock(); u.lines = append(u.lines, s); u.mu.Unlock() }
func (u *testUI) Error(s string)                      { u.mu.Lock(); u.errors = append(u.errors, s); u.mu.Unlock() }
func (u *testUI) TrackProgress(_ string, _, _ int64, r io.ReadCloser) io.ReadCloser {
	u.mu.Lock()
	u.progress = true
	u.mu.Unlock()
	return r
}

func (u *testUI) output() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return strings.Join(u.lines, "\n")
}

// build prepares and runs the builder.
func build(t *testing.T, ctx context.Context, raw map[string]interface{}) (*Artifact, *testUI, error) {
	t.Helper()
	if _, ok := raw["packer_build_name"]; !ok {
		raw["packer_build_name"] = "test"
	}
	if _, ok := raw["output_directory"]; !ok {
		raw["output_directory"] = filepath.Join(t.TempDir(), "out")
	}
	var b Builder
	if _, _, err := b.Prepare(raw); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	ui := &testUI{}
	a, err := b.Run(ctx, ui, &packersdk.MockHook{})
	if a == nil {
		return nil, ui, err
	}
	return a.(*Artifact), ui, err
}

// fakeKiwi installs testdata/fake-kiwi-ng in mode and returns its path.
// The host checks for root and loop devices are replaced by the binary and
// description checks alone, so the tests run anywhere.
func fakeKiwi(t *testing.T, mode string) string {
	t.Helper()
	src, err := os.ReadFile("testdata/fake-kiwi-ng")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "kiwi-ng")
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FAKE_KIWI_MODE", mode)
	// Failed builds keep KIWI's log in the temporary directory.
	t.Setenv("TMPDIR", t.TempDir())
	old := kiwiPreflight
	kiwiPreflight = func(r *kiwi.Runner, o kiwi.Options) error {
		if _, err := r.LookPath(); err != nil {
			return err
		}
		return kiwi.CheckDescription(o.Description, o.KiwiFile)
	}
	t.Cleanup(func() { kiwiPreflight = old })
	return bin
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func sha256Bytes(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
