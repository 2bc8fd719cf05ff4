package gallery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"golang.org/x/sync/errgroup"
)

// APIVersion is the Compute Gallery API armcompute/v8 speaks (shown in
// dry-run requests).
const APIVersion = "2025-12-03"

// Actions a check decides.
const (
	ActCreate  = "create"  // missing: will be created
	ActExists  = "exists"  // definition present and matching
	ActSkip    = "skip"    // version present with the same source: already published
	ActReplace = "replace" // version present with another source, force: deleted and recreated
	ActResume  = "resume"  // creation started by an earlier run: polling resumes
	// ActRecreate: a version from this blob whose creation failed
	// (provisioning state Failed): deleted and created again.
	ActRecreate = "recreate"
	// ActWait: a version from this blob that another run is still
	// creating, with no resume token here: waited for (and made again if
	// it fails).
	ActWait = "wait"
)

// Options tune Check and Apply.
type Options struct {
	DryRun bool
	// Force deletes and recreates a version whose source differs.
	Force bool
	// ForceOption names the setting that sets Force, for errors.
	ForceOption string
	// Timeout bounds the polling of each version's creation (default 60m).
	Timeout time.Duration
	// PollFrequency is how often long-running operations are polled
	// (default 30s; the SDK refuses less than 1s outside tests).
	PollFrequency time.Duration
	// StateDir keeps the resume tokens of versions being created, so a
	// killed run resumes polling instead of creating again. Empty: none kept.
	StateDir string
	// Logf receives one line per request and decision.
	Logf func(format string, args ...any)
}

func (o *Options) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Minute
	}
	if o.PollFrequency <= 0 {
		o.PollFrequency = 30 * time.Second
	}
	if o.ForceOption == "" {
		o.ForceOption = "Options.Force"
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// DefinitionStatus is what Check found for one definition.
type DefinitionStatus struct {
	Definition
	Action string
}

// VersionStatus is what Check found for one version.
type VersionStatus struct {
	Version
	Action            string
	ProvisioningState string // of an existing version
	resumeToken       string
}

// Status is the outcome of Check: what Apply will do.
type Status struct {
	Plan        Plan
	Definitions []DefinitionStatus
	Versions    []VersionStatus
}

// FromSource names ("<version> of <definition>") the versions Check found
// already made from the plan's blob: skipped, resumed, waited for.
func (st *Status) FromSource() []string {
	var out []string
	for _, vs := range st.Versions {
		switch vs.Action {
		case ActSkip, ActResume, ActWait:
			out = append(out, vs.Name+" of "+vs.Definition)
		}
	}
	return out
}

// SourceChanged makes the versions FromSource names be deleted and created
// again (ActReplace): the blob's bytes changed after they were made from it.
func (st *Status) SourceChanged() {
	for i, vs := range st.Versions {
		switch vs.Action {
		case ActSkip, ActResume, ActWait:
			st.Versions[i].Action, st.Versions[i].resumeToken = ActReplace, ""
		}
	}
}

// BlobChanging decides, before the blob's bytes change (how: "overwritten"
// or "resumed"; pageblob.Options.BeforeChange), about the versions Check
// found made from its earlier bytes, which would go on claiming it: with
// o.Force they are deleted and created again (SourceChanged, said through
// o.Logf); without it the returned error names them and o.ForceOption.
func (st *Status) BlobChanging(blobURL, how string, o Options) error {
	o.defaults()
	used := st.FromSource()
	if len(used) == 0 {
		return nil
	}
	if !o.Force {
		return fmt.Errorf("blob %s would be %s, but image versions %s were made from its earlier bytes and would keep claiming it: set %s to recreate them too, or give another blob name", blobURL, how, strings.Join(used, ", "), o.ForceOption)
	}
	st.SourceChanged()
	o.Logf("blob %s is %s: image versions %s, made from its earlier bytes, are deleted and created again", blobURL, how, strings.Join(used, ", "))
	return nil
}

// MismatchError means an existing definition cannot take this image.
type MismatchError struct {
	Definition, Field, Have, Want string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("gallery image definition %s has %s %s, but this image needs %s; use another definition (image_name) or fix it in Azure", e.Definition, e.Field, e.Have, e.Want)
}

// VersionExistsError means a version exists with another source.
type VersionExistsError struct {
	Definition, Version, HaveURI, WantURI, Option string
}

func (e *VersionExistsError) Error() string {
	return fmt.Sprintf("image version %s of %s already exists from %s, not from %s; versions are never replaced unless asked: set %s to delete and recreate it", e.Version, e.Definition, e.HaveURI, e.WantURI, e.Option)
}

func str[T ~string](p *T, def string) string {
	if p == nil {
		return def
	}
	return string(*p)
}

// Check compares the plan with the gallery, reading only: call it before
// uploading, so a mismatch stops the publish before anything happens.
func Check(ctx context.Context, c Client, p Plan, o Options) (Status, error) {
	o.defaults()
	if err := p.Validate(); err != nil {
		return Status{}, err
	}
	st := Status{Plan: p}
	if err := checkStorageAccount(ctx, c, p, o); err != nil {
		return st, err
	}
	var errs []error
	for _, d := range p.Definitions {
		o.Logf("GET %s", defPath(p.Gallery, d.Name))
		have, err := c.GetDefinition(ctx, p.Gallery, d.Name)
		if err != nil {
			return st, fmt.Errorf("read gallery image definition %s: %w", d.Name, err)
		}
		if have == nil {
			st.Definitions = append(st.Definitions, DefinitionStatus{d, ActCreate})
			continue
		}
		if err := matches(d, have); err != nil {
			errs = append(errs, err)
			continue
		}
		st.Definitions = append(st.Definitions, DefinitionStatus{d, ActExists})
	}
	if len(errs) > 0 {
		return st, errors.Join(errs...)
	}
	for _, v := range p.Versions {
		vs := VersionStatus{Version: v, Action: ActCreate}
		o.Logf("GET %s", versionPath(p.Gallery, v.Definition, v.Name))
		have, err := c.GetVersion(ctx, p.Gallery, v.Definition, v.Name)
		if err != nil {
			return st, fmt.Errorf("read image version %s of %s: %w", v.Name, v.Definition, err)
		}
		tok := readToken(o.StateDir, p.Gallery, v)
		if have != nil {
			var props armcompute.GalleryImageVersionProperties
			if have.Properties != nil {
				props = *have.Properties
			}
			vs.ProvisioningState = str(props.ProvisioningState, "")
			uri, acct := sourceOf(have)
			same := sameSource(uri, acct, v.Source)
			// Only a version that succeeded is published: one that failed
			// is made again, one still being created is resumed (with the
			// token of the run that started it) or waited for.
			switch {
			case !same && o.Force:
				vs.Action = ActReplace
			case !same:
				errs = append(errs, &VersionExistsError{v.Definition, v.Name, uri, v.Source.URI, o.ForceOption})
				continue
			case vs.ProvisioningState == string(armcompute.GalleryProvisioningStateSucceeded):
				vs.Action = ActSkip
			case vs.ProvisioningState == string(armcompute.GalleryProvisioningStateFailed):
				vs.Action = ActRecreate
			case tok != "":
				vs.Action, vs.resumeToken = ActResume, tok
			default:
				vs.Action = ActWait
			}
		}
		st.Versions = append(st.Versions, vs)
	}
	return st, errors.Join(errs...)
}

// checkStorageAccount reads the storage account of the versions' source:
// it must exist (a wrong resource group shows only when the version is
// created, after the upload) and be in the gallery's region.
func checkStorageAccount(ctx context.Context, c Client, p Plan, o Options) error {
	if len(p.Versions) == 0 {
		return nil
	}
	id := p.Versions[0].Source.StorageAccountID
	o.Logf("GET %s?api-version=%s", id, StorageAPIVersion)
	loc, err := c.StorageAccountLocation(ctx, id)
	if err != nil {
		return fmt.Errorf("read storage account %s (the versions' source): %w", id, err)
	}
	if loc == "" {
		return fmt.Errorf("storage account %s (the versions' source) does not exist: give its resource id in storage_account_id, or storage_resource_group when it is not in the gallery's resource group", id)
	}
	if normRegion(loc) != normRegion(p.Gallery.Location) {
		return fmt.Errorf("storage account %s is in %s, the gallery in %s: a version is made from a blob in the gallery's region; upload to an account in %s (storage_account, storage_account_id)", id, loc, p.Gallery.Location, p.Gallery.Location)
	}
	return nil
}

func matches(d Definition, have *armcompute.GalleryImage) error {
	var props armcompute.GalleryImageProperties
	if have.Properties != nil {
		props = *have.Properties
	}
	checks := []struct{ field, have, want string }{
		{"OS type", str(props.OSType, ""), "Linux"},
		{"OS state", str(props.OSState, ""), "Generalized"},
		{"hyperv generation", str(props.HyperVGeneration, "V1"), d.HyperVGeneration},
		{"architecture", str(props.Architecture, "x64"), d.Architecture},
	}
	for _, c := range checks {
		if !strings.EqualFold(c.have, c.want) {
			return &MismatchError{d.Name, c.field, c.have, c.want}
		}
	}
	return nil
}

func sourceOf(v *armcompute.GalleryImageVersion) (uri, account string) {
	if v.Properties == nil || v.Properties.StorageProfile == nil || v.Properties.StorageProfile.OSDiskImage == nil ||
		v.Properties.StorageProfile.OSDiskImage.Source == nil {
		return "", ""
	}
	s := v.Properties.StorageProfile.OSDiskImage.Source
	return str(s.URI, ""), str(s.StorageAccountID, "")
}

func sameSource(uri, account string, s Source) bool {
	strip := func(u string) string {
		if i := strings.IndexByte(u, '?'); i >= 0 {
			return u[:i]
		}
		return u
	}
	return strings.EqualFold(strip(uri), strip(s.URI)) && strings.EqualFold(account, s.StorageAccountID)
}

// Published is one version after Apply.
type Published struct {
	Definition, Version, HyperVGeneration string
	ID                                    string
	Regions                               []string
	Action                                string
}

// Request is one mutating request, as a dry run prints it.
type Request struct {
	Method, Path string
	Body         string `json:",omitempty"`
}

func (r Request) String() string {
	if r.Body == "" {
		return r.Method + " " + r.Path
	}
	return r.Method + " " + r.Path + "\n" + r.Body
}

// Result says what Apply did (or, in a dry run, would do).
type Result struct {
	DryRun             bool
	CreatedDefinitions []string
	Versions           []Published
	Requests           []Request
}

// Apply executes a checked plan. In a dry run it sends nothing and returns
// the requests it would send.
func Apply(ctx context.Context, c Client, st Status, o Options) (Result, error) {
	o.defaults()
	p := st.Plan
	res := Result{DryRun: o.DryRun}
	var mu, logMu sync.Mutex
	logf := o.Logf
	o.Logf = func(f string, a ...any) { // versions are created concurrently
		logMu.Lock()
		defer logMu.Unlock()
		logf(f, a...)
	}
	record := func(r Request) {
		mu.Lock()
		res.Requests = append(res.Requests, r)
		mu.Unlock()
		prefix := ""
		if o.DryRun {
			prefix = "dry run, not sent: "
		}
		o.Logf("%s%s", prefix, r)
	}
	gens := map[string]string{}
	for _, d := range st.Definitions {
		gens[d.Name] = d.HyperVGeneration
		if d.Action != ActCreate {
			continue
		}
		body := definitionBody(p.Gallery, d.Definition)
		record(Request{"PUT", defPath(p.Gallery, d.Name), jsonOf(body)})
		if !o.DryRun {
			if err := c.CreateDefinition(ctx, p.Gallery, d.Name, body, o.PollFrequency); err != nil {
				return res, fmt.Errorf("create gallery image definition %s: %w", d.Name, err)
			}
		}
		res.CreatedDefinitions = append(res.CreatedDefinitions, d.Name)
	}
	g, gctx := errgroup.WithContext(ctx)
	out := make([]Published, len(st.Versions))
	for i, vs := range st.Versions {
		out[i] = Published{Definition: vs.Definition, Version: vs.Name, HyperVGeneration: gens[vs.Definition],
			ID: p.Gallery.ID() + "/images/" + vs.Definition + "/versions/" + vs.Name, Action: vs.Action}
		for _, r := range regionsOf(p.Gallery, vs.Version) {
			out[i].Regions = append(out[i].Regions, r.Name)
		}
		switch vs.Action {
		case ActSkip:
			o.Logf("image version %s of %s already published from this blob (provisioning state %s); skipped", vs.Name, vs.Definition, vs.ProvisioningState)
			removeToken(o.StateDir, p.Gallery, vs.Version)
			continue
		case ActRecreate:
			o.Logf("image version %s of %s from this blob failed earlier (provisioning state Failed): deleted and created again", vs.Name, vs.Definition)
			removeToken(o.StateDir, p.Gallery, vs.Version)
		}
		g.Go(func() error {
			if vs.Action == ActWait {
				var err error
				if vs.Action, err = waitVersion(gctx, c, p.Gallery, vs, o); err != nil || vs.Action == ActWait {
					return err
				}
				out[i].Action = vs.Action
			}
			return createVersion(gctx, c, p.Gallery, vs, o, record)
		})
	}
	err := g.Wait()
	res.Versions = out
	return res, err
}

// waitVersion waits, polling with GET, for the creation of a version that
// another run started (no resume token here) to end, up to o.Timeout. It
// returns ActWait when the version succeeded, ActRecreate when it failed
// and ActCreate when it is gone.
func waitVersion(ctx context.Context, c Client, g Gallery, vs VersionStatus, o Options) (string, error) {
	o.Logf("image version %s of %s from this blob is %s, by another run (no resume token in %q): waiting for it", vs.Name, vs.Definition, vs.ProvisioningState, o.StateDir)
	if o.DryRun {
		return ActWait, nil
	}
	deadline := time.Now().Add(o.Timeout)
	state := vs.ProvisioningState
	for {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(o.PollFrequency):
		}
		have, err := c.GetVersion(ctx, g, vs.Definition, vs.Name)
		if err != nil {
			return "", fmt.Errorf("read image version %s of %s: %w", vs.Name, vs.Definition, err)
		}
		if have == nil {
			o.Logf("image version %s of %s is gone: created again", vs.Name, vs.Definition)
			return ActCreate, nil
		}
		if have.Properties != nil {
			state = str(have.Properties.ProvisioningState, "")
		}
		switch state {
		case string(armcompute.GalleryProvisioningStateSucceeded):
			o.Logf("image version %s of %s succeeded", vs.Name, vs.Definition)
			return ActWait, nil
		case string(armcompute.GalleryProvisioningStateFailed):
			o.Logf("image version %s of %s failed (provisioning state Failed): deleted and created again", vs.Name, vs.Definition)
			return ActRecreate, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("image version %s of %s is still %s after %s, created by another run (no resume token in %q): run the build again to wait again", vs.Name, vs.Definition, state, o.Timeout, o.StateDir)
		}
	}
}

func createVersion(ctx context.Context, c Client, g Gallery, vs VersionStatus, o Options, record func(Request)) error {
	path := versionPath(g, vs.Definition, vs.Name)
	if vs.Action == ActReplace || vs.Action == ActRecreate {
		record(Request{Method: "DELETE", Path: path})
		if !o.DryRun {
			if err := c.DeleteVersion(ctx, g, vs.Definition, vs.Name, o.PollFrequency); err != nil {
				return fmt.Errorf("delete image version %s of %s to replace it: %w", vs.Name, vs.Definition, err)
			}
		}
	}
	body := versionBody(g, vs.Version)
	if vs.Action == ActResume {
		o.Logf("resuming the creation of image version %s of %s from the token in %s", vs.Name, vs.Definition, tokenPath(o.StateDir, g, vs.Version))
	} else {
		record(Request{"PUT", path, jsonOf(body)})
	}
	if o.DryRun {
		return nil
	}
	poller, err := c.BeginCreateVersion(ctx, g, vs.Definition, vs.Name, body, vs.resumeToken)
	if err != nil {
		return fmt.Errorf("create image version %s of %s: %w", vs.Name, vs.Definition, err)
	}
	tokFile := ""
	if tok, err := poller.ResumeToken(); err == nil && tok != "" {
		if tokFile, err = writeToken(o.StateDir, g, vs.Version, tok); err != nil {
			return err
		}
	}
	pctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if err := poller.PollUntilDone(pctx, o.PollFrequency); err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil || errors.Is(err, context.Canceled) {
			if tokFile != "" {
				return fmt.Errorf("image version %s of %s is still being created after %s; its resume token is kept in %s: run the build again to resume polling: %w", vs.Name, vs.Definition, o.Timeout, tokFile, err)
			}
			return fmt.Errorf("create image version %s of %s: %w", vs.Name, vs.Definition, err)
		}
		// The operation failed: its token is of no more use, and the
		// version (now Failed) is made again by the next run.
		removeToken(o.StateDir, g, vs.Version)
		return fmt.Errorf("create image version %s of %s (the next run deletes and creates it again): %w", vs.Name, vs.Definition, err)
	}
	removeToken(o.StateDir, g, vs.Version)
	o.Logf("image version %s of %s created", vs.Name, vs.Definition)
	return nil
}

func defPath(g Gallery, def string) string {
	return g.ID() + "/images/" + def + "?api-version=" + APIVersion
}

func versionPath(g Gallery, def, v string) string {
	return g.ID() + "/images/" + def + "/versions/" + v + "?api-version=" + APIVersion
}

func jsonOf(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

func ptr[T any](v T) *T { return &v }

func definitionBody(g Gallery, d Definition) armcompute.GalleryImage {
	props := &armcompute.GalleryImageProperties{
		OSType:           ptr(armcompute.OperatingSystemTypesLinux),
		OSState:          ptr(armcompute.OperatingSystemStateTypesGeneralized),
		HyperVGeneration: ptr(armcompute.HyperVGeneration(d.HyperVGeneration)),
		Architecture:     ptr(armcompute.Architecture(d.Architecture)),
		Identifier:       &armcompute.GalleryImageIdentifier{Publisher: ptr(d.Identifier.Publisher), Offer: ptr(d.Identifier.Offer), SKU: ptr(d.Identifier.SKU)},
	}
	if d.Description != "" {
		props.Description = ptr(d.Description)
	}
	if d.EULA != "" {
		props.Eula = ptr(d.EULA)
	}
	feature := func(name, value string) {
		props.Features = append(props.Features, &armcompute.GalleryImageFeature{Name: ptr(name), Value: ptr(value)})
	}
	if d.SecurityType != "" {
		feature("SecurityType", d.SecurityType)
	}
	if d.DiskControllerTypes != "" {
		feature("DiskControllerTypes", d.DiskControllerTypes)
	}
	if d.AcceleratedNetworking {
		feature("IsAcceleratedNetworkSupported", "True")
	}
	return armcompute.GalleryImage{Location: ptr(g.Location), Properties: props}
}

// regionsOf returns the version's target regions, with the gallery's own
// region first when it was not listed (Azure requires it).
func regionsOf(g Gallery, v Version) []Region {
	rs := append([]Region(nil), v.Regions...)
	has := false
	for _, r := range rs {
		if normRegion(r.Name) == normRegion(g.Location) {
			has = true
		}
	}
	if !has && g.Location != "" {
		rs = append([]Region{{Name: g.Location, Replicas: 1}}, rs...)
	}
	return rs
}

func normRegion(s string) string { return strings.ToLower(strings.ReplaceAll(s, " ", "")) }

func versionBody(g Gallery, v Version) armcompute.GalleryImageVersion {
	pp := &armcompute.GalleryImageVersionPublishingProfile{ExcludeFromLatest: ptr(v.ExcludeFromLatest), EndOfLifeDate: v.EndOfLifeDate}
	if v.StorageAccountType != "" {
		pp.StorageAccountType = ptr(armcompute.StorageAccountType(v.StorageAccountType))
	}
	if v.Shallow {
		pp.ReplicationMode = ptr(armcompute.ReplicationModeShallow)
	}
	for _, r := range regionsOf(g, v) {
		tr := &armcompute.TargetRegion{Name: ptr(r.Name), RegionalReplicaCount: ptr(max(r.Replicas, 1)), ExcludeFromLatest: ptr(v.ExcludeFromLatest)}
		if r.StorageAccountType != "" {
			tr.StorageAccountType = ptr(armcompute.StorageAccountType(r.StorageAccountType))
		}
		pp.TargetRegions = append(pp.TargetRegions, tr)
	}
	return armcompute.GalleryImageVersion{
		Location: ptr(g.Location),
		Properties: &armcompute.GalleryImageVersionProperties{
			PublishingProfile: pp,
			StorageProfile: &armcompute.GalleryImageVersionStorageProfile{OSDiskImage: &armcompute.GalleryOSDiskImage{
				Source: &armcompute.GalleryDiskImageSource{StorageAccountID: ptr(v.Source.StorageAccountID), URI: ptr(v.Source.URI)},
			}},
		},
	}
}

// tokenPath is where the resume token of a version's creation is kept.
func tokenPath(dir string, g Gallery, v Version) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, fmt.Sprintf("gallery-%s-%s-%s.resume", g.Name, v.Definition, v.Name))
}

func readToken(dir string, g Gallery, v Version) string {
	p := tokenPath(dir, g, v)
	if p == "" {
		return ""
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func writeToken(dir string, g Gallery, v Version, tok string) (string, error) {
	p := tokenPath(dir, g, v)
	if p == "" {
		return "", nil
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("keep the resume token of image version %s: %w", v.Name, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("keep the resume token of image version %s: %w", v.Name, err)
	}
	return p, nil
}

func removeToken(dir string, g Gallery, v Version) {
	if p := tokenPath(dir, g, v); p != "" {
		os.Remove(p)
	}
}

// ExistingVersions lists the version names of the definitions (missing
// definitions have none) and the one, if any, already made from src.
func ExistingVersions(ctx context.Context, c Client, g Gallery, defs []string, src Source) (names []string, sameSourceVersion string, err error) {
	seen := map[string]bool{}
	sameOK := false // sameSourceVersion succeeded: preferred to a failed one
	for _, d := range defs {
		vs, err := c.ListVersions(ctx, g, d)
		if err != nil {
			return nil, "", fmt.Errorf("list the versions of %s: %w", d, err)
		}
		for _, v := range vs {
			if v == nil || v.Name == nil {
				continue
			}
			if uri, acct := sourceOf(v); sameSource(uri, acct, src) {
				ok := v.Properties != nil && str(v.Properties.ProvisioningState, "") == string(armcompute.GalleryProvisioningStateSucceeded)
				if sameSourceVersion == "" || ok && !sameOK {
					sameSourceVersion, sameOK = *v.Name, ok
				}
			}
			if !seen[*v.Name] {
				seen[*v.Name] = true
				names = append(names, *v.Name)
			}
		}
	}
	sort.Strings(names)
	return names, sameSourceVersion, nil
}
