package ociimage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/osimage/packer-plugin-osimage/internal/testsvc"
)

func indexAt(t testing.TB, ref string) *v1.IndexManifest {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	return im
}

func keysOf(im *v1.IndexManifest) []string {
	var out []string
	for _, d := range im.Manifests {
		out = append(out, d.Annotations[AnnotationBootMode]+"/"+d.Platform.Architecture)
	}
	return out
}

// Each goroutine is one Packer build: one variant, its own plan and publish,
// all into the same tags, serialised by the file lock.
func TestParallelBuildsMergingIntoOneTagAllEndPresent(t *testing.T) {
	t.Parallel()
	reg := testsvc.StartRegistry(t)
	fx := makeEntries(t, 256<<10)
	repo := reg.Host + "/os/parallel"
	lockDir := t.TempDir()
	o := testOptions()
	o.CombinedTag = "{{ .Version }}"
	var wg sync.WaitGroup
	errs := make(chan error, len(fx.entries))
	for _, e := range fx.entries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := NewPlan([]Entry{e}, o)
			if err != nil {
				errs <- err
				return
			}
			defer p.Close()
			_, err = Publish(context.Background(), p, Destination{Repository: repo, LockDir: lockDir, Settle: time.Millisecond})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := "baremetal/amd64 baremetal/arm64 virtualization/amd64 virtualization/arm64"
	if got := strings.Join(keysOf(indexAt(t, repo+":13.1")), " "); got != want {
		t.Fatalf("combined index holds %s, want %s", got, want)
	}
	if got := strings.Join(keysOf(indexAt(t, repo+":13.1-metal")), " "); got != "baremetal/amd64 baremetal/arm64" {
		t.Fatalf("baremetal index holds %s", got)
	}
}

// Processes, as `packer build -parallel-builds` runs one plugin process per
// build: the test binary runs itself once per entry.
func TestParallelProcessesMergingIntoOneTagAllEndPresent(t *testing.T) {
	t.Parallel()
	reg := testsvc.StartRegistry(t)
	fx := makeEntries(t, 256<<10)
	repo := reg.Host + "/os/procs"
	lockDir := t.TempDir()
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for i, e := range fx.entries {
		b, _ := json.Marshal(e)
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessPublishes$", "-test.count=1")
		cmd.Env = append(os.Environ(), "OCIIMAGE_HELPER_ENTRY="+string(b), "OCIIMAGE_HELPER_REPO="+repo, "OCIIMAGE_HELPER_LOCKDIR="+lockDir, "OCIIMAGE_HELPER_N="+strconv.Itoa(i))
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, outs[i])
		}
	}
	want := "baremetal/amd64 baremetal/arm64 virtualization/amd64 virtualization/arm64"
	if got := strings.Join(keysOf(indexAt(t, repo+":13.1")), " "); got != want {
		t.Fatalf("combined index holds %s, want %s", got, want)
	}
}

func TestHelperProcessPublishes(t *testing.T) {
	raw := os.Getenv("OCIIMAGE_HELPER_ENTRY")
	if raw == "" {
		t.Skip("helper process for TestParallelProcessesMergingIntoOneTagAllEndPresent")
	}
	var e Entry
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		t.Fatal(err)
	}
	o := testOptions()
	o.CombinedTag = "{{ .Version }}"
	p := mustPlan(t, []Entry{e}, o)
	mustPublish(t, p, Destination{Repository: os.Getenv("OCIIMAGE_HELPER_REPO"), LockDir: os.Getenv("OCIIMAGE_HELPER_LOCKDIR"), Settle: time.Millisecond})
}

// Runners on different machines share no lock: the read-back must notice
// that another writer replaced the index after our write, and merge again.
func TestALostRaceIsDetectedByTheReadBackAndMergedAgain(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"layout", "registry"} {
		t.Run(kind, func(t *testing.T) {
			fx := makeEntries(t, 8<<10)
			o := testOptions()
			pa := mustPlan(t, fx.entries[:1], o)
			pb := mustPlan(t, fx.entries[2:3], o) // arm64 virtualization: same tag
			var da, db Destination
			if kind == "layout" {
				dir := t.TempDir()
				da, db = Destination{Layout: dir}, Destination{Layout: dir}
			} else {
				reg := testsvc.StartRegistry(t)
				da = Destination{Repository: reg.Host + "/os/race", Settle: time.Millisecond}
				db = da
			}
			// Different lock directories: as on two machines.
			da.LockDir, db.LockDir = t.TempDir(), t.TempDir()
			// B has already read the empty tag; right after A writes, B writes
			// its own merge of that stale read, dropping A's entry.
			staleB, _, err := Merge("x", Existing{}, []v1.Descriptor{descriptorFor(pb.Manifests[0], pb.Indexes[0])}, pb.Indexes[0].Annotations, false)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			tb, err := targetFor(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			if err := tb.writeManifests(ctx, pb, nil); err != nil {
				t.Fatal(err)
			}
			fired := 0
			var logs []string
			da.Logf = func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
			da.hook = func(tag string) {
				if fired == 0 {
					if err := tb.putIndex(ctx, tag, staleB); err != nil {
						t.Error(err)
					}
				}
				fired++
			}
			res := mustPublish(t, pa, da)
			if fired != 2 || len(logs) != 1 || !strings.Contains(logs[0], "another writer replaced the index; merging again (attempt 2 of 8)") {
				t.Fatalf("hook fired %d times, logs %q", fired, logs)
			}
			if res.Indexes[0].Entries != 2 {
				t.Fatalf("index holds %d entries after the retry, want A's and B's", res.Indexes[0].Entries)
			}
			cur, _ := tb.get(ctx, "13.1-kvm")
			idx, _ := parseIndex("x", cur)
			if got := strings.Join(keysOf(idx), " "); got != "virtualization/amd64 virtualization/arm64" {
				t.Fatalf("index holds %s", got)
			}

			// A race lost at every attempt ends, after the attempts allowed,
			// in an error, not in silence or in endless retries.
			o2 := testOptions()
			o2.Version = "13.2"
			pc := mustPlan(t, fx.entries[:1], o2)
			da.MaxAttempts = 3
			lost := 0
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			da.hook = func(tag string) {
				if lost++; lost > 3 {
					cancel()
				}
				// Each time another version: a writer, not a stale read.
				other, _, _ := Merge("x", Existing{}, []v1.Descriptor{descriptorFor(pb.Manifests[0], pb.Indexes[0])}, map[string]string{"n": strconv.Itoa(lost)}, false)
				tb.putIndex(ctx, tag, other)
			}
			_, err = Publish(cctx, pc, da)
			if !errors.Is(err, ErrLostRace) || lost != 3 || !strings.Contains(err.Error(), ":13.2-kvm: another writer replaced the index 3 times") {
				t.Fatalf("%d writes; error %v", lost, err)
			}
		})
	}
}

func targetFor(ctx context.Context, d Destination) (target, error) {
	if d.Layout != "" {
		return newLayoutTarget(d)
	}
	return newRegistryTarget(ctx, d)
}

func TestPublishNeedsExactlyOneDestination(t *testing.T) {
	fx := makeEntries(t, 1024)
	p := mustPlan(t, fx.entries[:1], testOptions())
	if _, err := Publish(context.Background(), p, Destination{}); err == nil || !strings.Contains(err.Error(), "neither a repository nor a layout") {
		t.Fatalf("no destination: %v", err)
	}
	if _, err := Publish(context.Background(), p, Destination{Repository: "r.io/x", Layout: "/tmp/x"}); err == nil || !strings.Contains(err.Error(), "both a repository (r.io/x) and a layout directory (/tmp/x)") {
		t.Fatalf("two destinations: %v", err)
	}
}

func TestALockedDestinationWaitsAndHonoursCancellation(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockFile(context.Background(), dir, "registry:r.io/x")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := lockFile(ctx, dir, "registry:r.io/x"); err == nil {
		t.Fatal("a second lock on the same destination was granted")
	}
	// Another destination is not blocked.
	u2, err := lockFile(context.Background(), dir, "registry:r.io/y")
	if err != nil {
		t.Fatal(err)
	}
	u2()
	unlock()
	u3, err := lockFile(context.Background(), dir, "registry:r.io/x")
	if err != nil {
		t.Fatalf("lock not released: %v", err)
	}
	u3()
}
