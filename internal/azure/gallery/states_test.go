package gallery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"

	"github.com/osimage/packer-plugin-osimage/internal/azure/gallery/armfake"
)

// versionIn returns a version from blob in the given provisioning state.
func versionIn(state armcompute.GalleryProvisioningState) armcompute.GalleryImageVersion {
	v := existingVersion(blob.URI)
	v.Properties.ProvisioningState = ptr(state)
	return v
}

func state(t *testing.T, s *armfake.Store, def, ver string) armcompute.GalleryProvisioningState {
	t.Helper()
	v, ok := s.Version(def, ver)
	if !ok || v.Properties == nil || v.Properties.ProvisioningState == nil {
		t.Fatalf("no version %s of %s", ver, def)
	}
	return *v.Properties.ProvisioningState
}

func TestAFailedVersionFromTheSameBlobIsDeletedAndCreatedAgain(t *testing.T) {
	s := newStore()
	p, _ := Build(almaRequest("x86_64"))
	s.PutVersion("almalinux-9-gen2", p.Versions[0].Name, versionIn(armcompute.GalleryProvisioningStateFailed))
	var log strings.Builder
	o := fastOpts(t)
	o.Logf = func(f string, a ...any) { log.WriteString(f + "\n") }
	res, err := publish(t, client(t, s), p, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Versions[0].Action != ActRecreate || s.VersionDeletes.Load() != 1 || s.VersionCreates.Load() != 1 {
		t.Fatalf("action %s, %d deletes, %d creates", res.Versions[0].Action, s.VersionDeletes.Load(), s.VersionCreates.Load())
	}
	if got := state(t, s, "almalinux-9-gen2", p.Versions[0].Name); got != armcompute.GalleryProvisioningStateSucceeded {
		t.Fatalf("state %s after the re-creation", got)
	}
	if !strings.Contains(log.String(), "failed") || !strings.Contains(log.String(), "deleted and created again") {
		t.Fatalf("the log does not say why the version is made again:\n%s", log.String())
	}
}

func TestAVersionAnotherRunIsStillCreatingIsWaitedForNotSkipped(t *testing.T) {
	for _, final := range []armcompute.GalleryProvisioningState{armcompute.GalleryProvisioningStateSucceeded, armcompute.GalleryProvisioningStateFailed} {
		t.Run(string(final), func(t *testing.T) {
			s := newStore()
			p, _ := Build(almaRequest("x86_64"))
			ver := p.Versions[0].Name
			s.PutVersion("almalinux-9-gen2", ver, versionIn(armcompute.GalleryProvisioningStateSucceeded))
			s.HoldCreating("almalinux-9-gen2", ver, 4, final)
			o := fastOpts(t) // a fresh runner: no resume token
			res, err := publish(t, client(t, s), p, o)
			if err != nil {
				t.Fatal(err)
			}
			if s.VersionGets.Load() < 5 {
				t.Fatalf("only %d GETs: the version was not waited for", s.VersionGets.Load())
			}
			wantAct, creates := ActWait, int64(0)
			if final == armcompute.GalleryProvisioningStateFailed {
				wantAct, creates = ActRecreate, 1
			}
			if res.Versions[0].Action != wantAct || s.VersionCreates.Load() != creates {
				t.Fatalf("action %s, %d creates", res.Versions[0].Action, s.VersionCreates.Load())
			}
			if got := state(t, s, "almalinux-9-gen2", ver); got != armcompute.GalleryProvisioningStateSucceeded {
				t.Fatalf("state %s", got)
			}
		})
	}
}

func TestWaitingForAVersionStillCreatingEndsAtTheTimeout(t *testing.T) {
	s := newStore()
	p, _ := Build(almaRequest("x86_64"))
	ver := p.Versions[0].Name
	s.PutVersion("almalinux-9-gen2", ver, versionIn(armcompute.GalleryProvisioningStateSucceeded))
	s.HoldCreating("almalinux-9-gen2", ver, 1<<30, armcompute.GalleryProvisioningStateSucceeded)
	o := fastOpts(t)
	o.Timeout = 50 * time.Millisecond
	_, err := publish(t, client(t, s), p, o)
	if err == nil || !strings.Contains(err.Error(), "still Creating") || !strings.Contains(err.Error(), "run the build again") {
		t.Fatalf("got %v", err)
	}
	if s.VersionCreates.Load() != 0 {
		t.Fatal("a version being created was put again")
	}
}

func TestAResumeTokenWhoseOperationFailedIsDroppedAndTheVersionMadeAgain(t *testing.T) {
	s := newStore()
	s.PendingPolls = 40
	s.FailVersion = "ReplicationFailed"
	p, _ := Build(almaRequest("x86_64"))
	ver := p.Versions[0].Name
	o := fastOpts(t)
	o.PollFrequency = 20 * time.Millisecond
	o.Timeout = 100 * time.Millisecond
	tok := filepath.Join(o.StateDir, "gallery-osimage-almalinux-9-gen2-"+ver+".resume")
	if _, err := publish(t, client(t, s), p, o); err == nil || !strings.Contains(err.Error(), "still being created") {
		t.Fatalf("first run: %v", err)
	}
	// The second run resumes polling and finds the operation failed: the
	// error is reported and the token dropped.
	o.Timeout = time.Minute
	_, err := publish(t, client(t, s), p, o)
	if err == nil || !strings.Contains(err.Error(), "ReplicationFailed") {
		t.Fatalf("resumed run: %v", err)
	}
	if _, err := os.Stat(tok); !os.IsNotExist(err) {
		t.Fatal("the token of a failed operation was kept")
	}
	if got := state(t, s, "almalinux-9-gen2", ver); got != armcompute.GalleryProvisioningStateFailed {
		t.Fatalf("state %s, want Failed", got)
	}
	// A third run makes the version again.
	s.FailVersion, s.PendingPolls = "", 0
	res, err := publish(t, client(t, s), p, o)
	if err != nil || res.Versions[0].Action != ActRecreate || s.VersionCreates.Load() != 2 {
		t.Fatalf("third run: %+v %v", res.Versions, err)
	}

	// A token left next to a version that is Failed is dropped too.
	if err := os.WriteFile(tok, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.PutVersion("almalinux-9-gen2", ver, versionIn(armcompute.GalleryProvisioningStateFailed))
	res, err = publish(t, client(t, s), p, o)
	if err != nil || res.Versions[0].Action != ActRecreate {
		t.Fatalf("failed version with a token: %+v %v", res.Versions, err)
	}
	if _, err := os.Stat(tok); !os.IsNotExist(err) {
		t.Fatal("token kept")
	}
}

func TestExistingVersionsPrefersASucceededVersionOfTheSameBlob(t *testing.T) {
	s := newStore()
	s.PutVersion("almalinux-9-gen2", "9.6.2025052201", versionIn(armcompute.GalleryProvisioningStateFailed))
	s.PutVersion("almalinux-9-gen2", "9.6.2025052202", versionIn(armcompute.GalleryProvisioningStateSucceeded))
	s.PutVersion("almalinux-9-gen2", "9.6.2025052203", versionIn(armcompute.GalleryProvisioningStateFailed))
	_, same, err := ExistingVersions(t.Context(), client(t, s), testGallery, []string{"almalinux-9-gen2"}, blob)
	if err != nil || same != "9.6.2025052202" {
		t.Fatalf("same %q %v", same, err)
	}
	// A failed version of the blob alone is still its version: Check then
	// makes it again under the same name instead of a new one.
	s = newStore()
	s.PutVersion("almalinux-9-gen2", "9.6.2025052201", versionIn(armcompute.GalleryProvisioningStateFailed))
	_, same, err = ExistingVersions(t.Context(), client(t, s), testGallery, []string{"almalinux-9-gen2"}, blob)
	if err != nil || same != "9.6.2025052201" {
		t.Fatalf("failed version only: same %q %v", same, err)
	}
}

func TestARequestPrintsItsMethodPathAndBody(t *testing.T) {
	if got := (Request{Method: "DELETE", Path: "/x"}).String(); got != "DELETE /x" {
		t.Fatalf("%q", got)
	}
	if got := (Request{Method: "PUT", Path: "/x", Body: "{}"}).String(); got != "PUT /x\n{}" {
		t.Fatalf("%q", got)
	}
}

func TestSourceChangedRecreatesTheVersionsMadeFromTheBlob(t *testing.T) {
	st := Status{Versions: []VersionStatus{
		{Version: Version{Definition: "a", Name: "1.0.0"}, Action: ActSkip},
		{Version: Version{Definition: "b", Name: "1.0.0"}, Action: ActResume, resumeToken: "tok"},
		{Version: Version{Definition: "c", Name: "1.0.0"}, Action: ActWait},
		{Version: Version{Definition: "d", Name: "1.0.0"}, Action: ActCreate},
		{Version: Version{Definition: "e", Name: "1.0.0"}, Action: ActRecreate},
		{Version: Version{Definition: "f", Name: "1.0.0"}, Action: ActReplace},
	}}
	if got := strings.Join(st.FromSource(), ", "); got != "1.0.0 of a, 1.0.0 of b, 1.0.0 of c" {
		t.Fatalf("FromSource %q", got)
	}
	st.SourceChanged()
	var acts []string
	for _, vs := range st.Versions {
		acts = append(acts, vs.Action)
	}
	if strings.Join(acts, ",") != "replace,replace,replace,create,recreate,replace" || st.Versions[1].resumeToken != "" {
		t.Fatalf("actions %v, token %q", acts, st.Versions[1].resumeToken)
	}
	if len(st.FromSource()) != 0 {
		t.Fatal("versions still from the source after SourceChanged")
	}
}

func TestAVersionFromABlobThatIsNotAPageBlobIsRefusedByTheStandIn(t *testing.T) {
	s := newStore()
	s.SourceBlobType = func(_ context.Context, uri string) (string, error) {
		if uri != blob.URI {
			t.Errorf("asked about %s", uri)
		}
		return "BlockBlob", nil
	}
	p, _ := Build(almaRequest("x86_64"))
	_, err := publish(t, client(t, s), p, fastOpts(t))
	if err == nil || !strings.Contains(err.Error(), "InvalidParameter") || !strings.Contains(err.Error(), "must be a page blob") {
		t.Fatalf("got %v", err)
	}
	if s.VersionCreates.Load() != 0 {
		t.Fatal("a version was made from a block blob")
	}
	s.SourceBlobType = func(context.Context, string) (string, error) { return "PageBlob", nil }
	if _, err := publish(t, client(t, s), p, fastOpts(t)); err != nil {
		t.Fatal(err)
	}
}

func TestBlobChangingStopsUnlessForcedWhenVersionsWereMadeFromTheBlob(t *testing.T) {
	fresh := func() Status {
		return Status{Versions: []VersionStatus{{Version: Version{Definition: "a", Name: "1.0.0"}, Action: ActSkip},
			{Version: Version{Definition: "b", Name: "1.0.0"}, Action: ActCreate}}}
	}
	st := fresh()
	err := st.BlobChanging("https://x/c/b.vhd", "overwritten", Options{ForceOption: "force = true"})
	if err == nil || !strings.Contains(err.Error(), "blob https://x/c/b.vhd would be overwritten, but image versions 1.0.0 of a were made from its earlier bytes") ||
		!strings.Contains(err.Error(), "set force = true") || st.Versions[0].Action != ActSkip {
		t.Fatalf("without force: %v, %s", err, st.Versions[0].Action)
	}
	var log []string
	st = fresh()
	if err := st.BlobChanging("https://x/c/b.vhd", "resumed", Options{Force: true, Logf: func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) }}); err != nil {
		t.Fatal(err)
	}
	if st.Versions[0].Action != ActReplace || st.Versions[1].Action != ActCreate || len(log) != 1 || !strings.Contains(log[0], "is resumed: image versions 1.0.0 of a") {
		t.Fatalf("with force: %+v %q", st.Versions, log)
	}
	none := Status{Versions: []VersionStatus{{Version: Version{Definition: "b", Name: "1.0.0"}, Action: ActCreate}}}
	if err := none.BlobChanging("u", "overwritten", Options{}); err != nil {
		t.Fatalf("no version from the blob: %v", err)
	}
}
