package testutil

import (
	"os"
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
