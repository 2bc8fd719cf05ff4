package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestUnprivilegedRunsTheBodyWithoutRoot(t *testing.T) {
	if !Unprivileged(t) {
		return
	}
	if os.Geteuid() == 0 {
		t.Fatal("the body runs as root")
	}
	if os.Getenv(UnprivilegedEnv) == "1" && (os.Geteuid() != NobodyID || os.Getegid() != NobodyID) {
		t.Fatalf("child runs as %d:%d, want %d:%d", os.Geteuid(), os.Getegid(), NobodyID, NobodyID)
	}
	// The child has a TempDir it can write.
	if err := os.WriteFile(t.TempDir()+"/f", []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestNeedPassesWhenTheConditionHolds(t *testing.T) {
	t.Setenv(RequireEnv, "1")
	Need(t, true, "nothing missing", "nothing to do")
}

func TestDirNamesListsADirectoryAndNothingForAMissingOne(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b", "a"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := DirNames(dir); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("DirNames = %v, want [a b]", got)
	}
	if got := DirNames(filepath.Join(dir, "missing")); len(got) != 0 {
		t.Errorf("DirNames of a missing directory = %v, want none", got)
	}
}
