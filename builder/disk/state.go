package disk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
)

// State bag keys. Steps talk to each other only through these (and the
// SDK's "ui", "hook", "error" and "generated_data").
const (
	// StateConfig is the *Config.
	StateConfig = "config"
	// StateOutputs is the *outputs: every file this build has written so
	// far, by role. Steps add to it; the artifact is made from it.
	StateOutputs = "osimage.outputs"
	// StateKiwiResult is the *kiwi.Result of a KIWI build, with paths as
	// KIWI wrote them (inside the target directory, now removed); for
	// logging and for steps that want to know what KIWI made.
	StateKiwiResult = "osimage.kiwi_result"
	// StateDiskChanged is set (to true) by a step that changed the disk
	// after it was made: the QEMU boot/provisioning phase. KIWI's kis
	// files then describe the unprovisioned image, so StepBootFiles
	// extracts kernel, initramfs and rootfs from the disk instead.
	StateDiskChanged = "osimage.disk_changed"
	// StateKiwiDuration is how long kiwi-ng itself ran (a time.Duration),
	// so the builder can report the time it adds on top.
	StateKiwiDuration = "osimage.kiwi_duration"
	// StateGeneratedData is the SDK's key for data provisioners and
	// post-processors see as build.<Name>.
	StateGeneratedData = "generated_data"
)

// Names of the generated data (Prepare returns them; values are strings,
// empty when not applicable). KernelPath, InitrdPath, RootfsPath, CmdlinePath and
// DiskSHA256 are only set after the boot files and checksums steps, so
// provisioners (which run before them) see them empty.
var generatedNames = []string{
	"Key", "Image", "ImageName", "Arch", "Platform", "HyperVGeneration", "Firmware", "DistroVersion",
	"Source", "OutputDir", "DiskPath", "DiskSHA256", "KernelPath", "InitrdPath", "RootfsPath", "CmdlinePath",
}

// outputs is what the build wrote, by role, with checksums where known.
type outputs struct {
	Files []artifact.File
	// stamps record size and modification time of a file when its SHA256
	// was computed, so StepChecksums can tell whether it is still valid.
	stamps map[string]stamp

	// Background hashing (prehash): results by path, each with the stamp
	// the file had before it was read.
	mu       sync.Mutex
	bg       sync.WaitGroup
	pre      map[string]prehashed
	cancelBg context.CancelFunc
}

type prehashed struct {
	sha256 string
	stamp  stamp
}

type stamp struct {
	size  int64
	mtime time.Time
}

func getOutputs(state multistep.StateBag) *outputs {
	if o, ok := state.GetOk(StateOutputs); ok {
		return o.(*outputs)
	}
	o := &outputs{stamps: map[string]stamp{}}
	state.Put(StateOutputs, o)
	return o
}

// add records a file (replacing an entry with the same role and path).
// A non-empty SHA256 is remembered together with the file's current size
// and modification time.
func (o *outputs) add(f artifact.File) {
	if f.SHA256 != "" {
		if st, err := os.Stat(f.Path); err == nil {
			o.stamps[f.Path] = stamp{st.Size(), st.ModTime()}
			f.Size = st.Size()
		} else {
			f.SHA256 = ""
		}
	}
	for i := range o.Files {
		if o.Files[i].Path == f.Path {
			o.Files[i] = f
			return
		}
	}
	o.Files = append(o.Files, f)
}

// one returns the first file with the role.
func (o *outputs) one(role string) (artifact.File, bool) {
	for _, f := range o.Files {
		if f.Role == role {
			return f, true
		}
	}
	return artifact.File{}, false
}

// hashValid says whether a recorded SHA256 still describes the file.
func (o *outputs) hashValid(f artifact.File) bool {
	if f.SHA256 == "" {
		return false
	}
	s, ok := o.stamps[f.Path]
	if !ok {
		return false
	}
	st, err := os.Stat(f.Path)
	return err == nil && st.Size() == s.size && st.ModTime().Equal(s.mtime)
}

// prehash starts computing the SHA-256 of files in the background, one
// goroutine per file, so that it overlaps with other work (removing KIWI's
// image root). StepChecksums uses a result only if the file still has the
// size and modification time it had before it was read; a step that
// rewrites a file (the QEMU phase) should call waitBackground first so the
// two do not compete for the disk.
func (o *outputs) prehash(ctx context.Context, paths ...string) {
	o.mu.Lock()
	if o.pre == nil {
		o.pre = map[string]prehashed{}
	}
	if o.cancelBg == nil {
		ctx, o.cancelBg = context.WithCancel(ctx)
	}
	o.mu.Unlock()
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		before := stamp{st.Size(), st.ModTime()}
		o.bg.Add(1)
		go func(p string) {
			defer o.bg.Done()
			h := sha256.New()
			if _, err := hashFile(ctx, p, nil, h); err != nil {
				return
			}
			o.mu.Lock()
			o.pre[p] = prehashed{hex.EncodeToString(h.Sum(nil)), before}
			o.mu.Unlock()
		}(p)
	}
}

// waitBackground waits for background hashing to finish.
func (o *outputs) waitBackground() { o.bg.Wait() }

// stopBackground cancels background hashing and waits for it, so no
// goroutine outlives the build.
func (o *outputs) stopBackground() {
	o.mu.Lock()
	cancel := o.cancelBg
	o.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	o.bg.Wait()
}

// prehashed returns a background result that is still valid for f.
func (o *outputs) prehashedSum(f artifact.File) (string, bool) {
	o.mu.Lock()
	p, ok := o.pre[f.Path]
	o.mu.Unlock()
	if !ok {
		return "", false
	}
	st, err := os.Stat(f.Path)
	if err != nil || st.Size() != p.stamp.size || !st.ModTime().Equal(p.stamp.mtime) {
		return "", false
	}
	return p.sha256, true
}

// putGenerated sets one generated data value.
func putGenerated(state multistep.StateBag, key, value string) {
	m, ok := state.GetOk(StateGeneratedData)
	if !ok {
		m = map[string]interface{}{}
	}
	gd := m.(map[string]interface{})
	gd[key] = value
	state.Put(StateGeneratedData, gd)
}

// halt records err as the build's error, shows it, and stops the build.
func halt(state multistep.StateBag, ui packersdk.Ui, err error) multistep.StepAction {
	state.Put("error", err)
	ui.Error(err.Error())
	return multistep.ActionHalt
}

func halted(state multistep.StateBag) bool {
	_, cancelled := state.GetOk(multistep.StateCancelled)
	_, h := state.GetOk(multistep.StateHalted)
	return cancelled || h
}
