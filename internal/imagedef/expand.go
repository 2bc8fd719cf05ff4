// Design: Expand works out images in parallel, each alone and with templates shared by its variants with the same
// settings, arch and generation; their results are then taken in name order, so nothing depends on timing.

package imagedef

import (
	"encoding/json"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// Options select what Expand produces.
type Options struct {
	// Distro builds for this distro: images that name another distro are
	// dropped, images that name none use it. Default: the project's
	// default-distro, or the only distro of the tree.
	Distro string
	// Version is the version of that distro (a key of versions). Default:
	// project default-distro.version, else the distro's default-version,
	// else its only version.
	Version string
	// Only keeps a variant if every entry matches its image name, its key or
	// one of its dimension values (built-in values in any accepted spelling).
	Only []string
	// Skip drops a variant if any entry matches (same matching as Only).
	Skip []string
	// Strict turns Expand's warnings (a publish label that matches no target
	// of the chosen version, a target without an image for the variant's
	// arch, an image-stores entry that names no target, an image that names
	// an undefined distro, a skip entry that matches nothing) into errors.
	Strict bool
	// Lenient lets a publish label that no target of the tree carries (a
	// typo, when the tree has targets) pass as a warning; by default it is
	// an error. A label carried only by targets of another version is a
	// warning either way (an error with Strict).
	Lenient bool
}

// maxCombinations bounds the cross product over all images, before
// exclusions, so that a small file cannot ask for billions of variants.
var maxCombinations = 1_000_000

// Expand turns the tree into the list of variants: for every image (sorted by
// name) the cross product of its dimensions, minus the combinations exclude
// rules drop, with when rules merged in, then filtered by opts.Only and
// opts.Skip. It does no I/O and does not modify t.
func Expand(t *Tree, opts Options) ([]Variant, []Warning, error) {
	if t == nil {
		return nil, nil, &ConfigError{Msg: "no tree to expand", Kind: ErrNoVariants}
	}
	e := &expander{t: t, opts: opts, versions: map[string]*versionCtx{}}
	if err := e.chooseDistro(); err != nil {
		return nil, nil, err
	}
	e.only = compileFilters(opts.Only)
	e.skip = compileFilters(opts.Skip)
	total, err := e.checkSize()
	if err != nil {
		return nil, nil, err
	}
	prealloc := min(total, 1<<16) // exclusions may drop most of a huge matrix
	e.out = make([]Variant, 0, prealloc)
	e.keys = make(map[string]keyOwner, prealloc)
	if err := e.expandImages(); err != nil {
		return nil, nil, err
	}
	if err := e.finish(); err != nil {
		return nil, nil, err
	}
	return e.out, e.warnings, nil
}

// expander is the state of one Expand call. The image workers only read
// it (t, opts, chosen, plans and the filters' spellings).
type expander struct {
	t        *Tree
	opts     Options
	chosen   string                  // distro for images that name none
	plans    map[string]*versionPlan // resolved before the images are expanded
	versions map[string]*versionCtx  // the plans in use (their warnings reported)
	only     []*filterEntry
	skip     []*filterEntry
	keys     map[string]keyOwner
	labels   []labelUse // one per image and publish label
	warned   map[string]bool
	warnings []Warning
	out      []Variant

	// statistics for the "no variants" error
	images, combos, excluded, onlyDropped, skipDropped int
	distroDropped                                      []string
}

type keyOwner struct {
	img   *Image
	combo int // combination number, see comboText
}

type labelUse struct {
	img     *Image
	label   string
	matched bool
	vc      *versionCtx
}

// versionCtx is what Expand knows about one distro version.
type versionCtx struct {
	distro, version, releaseVer string
	unresolved                  []string
	targets                     []*PublishTarget
}

// warn records a warning (once), or fails in strict mode.
func (e *expander) warn(kind error, w Warning) error {
	if e.opts.Strict {
		return &ConfigError{File: w.File, Line: w.Line, Col: w.Col, Key: w.Key, Msg: w.Msg + " (strict mode)", Kind: kind}
	}
	if e.warned == nil {
		e.warned = map[string]bool{}
	}
	if s := w.String(); !e.warned[s] {
		e.warned[s] = true
		e.warnings = append(e.warnings, w)
	}
	return nil
}

func (e *expander) chooseDistro() error {
	t := e.t
	switch {
	case e.opts.Distro != "":
		e.chosen = e.opts.Distro
		if len(t.Distros) > 0 && t.Distros[e.chosen] == nil {
			return &ConfigError{Key: "distro", Kind: ErrUnknownDistro,
				Msg: fmt.Sprintf("distro %q is not defined; defined distros: %s", e.chosen, strings.Join(sortedKeys(t.Distros), ", "))}
		}
	case t.DefaultDistro != "":
		e.chosen = t.DefaultDistro
	case len(t.Distros) == 1:
		e.chosen = sortedKeys(t.Distros)[0]
	}
	if e.opts.Version != "" && t.Distros[e.chosen] == nil {
		return &ConfigError{Key: "version", Kind: ErrUnknownDistro,
			Msg: fmt.Sprintf("version %q given, but there is no distro to apply it to; name one of: %s", e.opts.Version, strings.Join(sortedKeys(t.Distros), ", "))}
	}
	return nil
}

// versionPlan is a distro version resolved before the images are
// expanded, with what resolving it reports: Expand reports that where the
// first image that uses the version is expanded.
type versionPlan struct {
	vc       *versionCtx
	warnings []Warning // of kind ErrTargets
	err      error
}

// planVersions resolves the distro version of every image that is not
// dropped for its distro.
func (e *expander) planVersions() {
	e.plans = map[string]*versionPlan{}
	for _, img := range e.t.Images {
		if !e.dropped(img) {
			if name := e.distroOf(img); e.plans[name] == nil {
				e.plans[name] = e.resolveVersion(name)
			}
		}
	}
}

// dropped reports whether Options.Distro drops img.
func (e *expander) dropped(img *Image) bool {
	return e.opts.Distro != "" && img.Distro != "" && img.Distro != e.opts.Distro
}

// distroOf is the distro img builds for.
func (e *expander) distroOf(img *Image) string {
	if img.Distro == "" {
		return e.chosen
	}
	return img.Distro
}

// version returns the distro version an image of distro name builds for,
// reporting the plan's warnings or error on first use.
func (e *expander) version(name string) (*versionCtx, error) {
	if vc, ok := e.versions[name]; ok {
		return vc, nil
	}
	p := e.plans[name]
	if p.err != nil {
		return nil, p.err
	}
	for _, w := range p.warnings {
		if err := e.warn(ErrTargets, w); err != nil {
			return nil, err
		}
	}
	e.versions[name] = p.vc
	return p.vc, nil
}

// resolveVersion resolves the distro version an image of distro name builds
// for.
func (e *expander) resolveVersion(name string) *versionPlan {
	t := e.t
	vc := &versionCtx{distro: name}
	p := &versionPlan{vc: vc}
	var dv *DistroVersion
	if d := t.Distros[name]; d != nil {
		ver := d.DefaultVersion
		if name == t.DefaultDistro && t.DefaultDistroVersion != "" {
			ver = t.DefaultDistroVersion
		}
		if name == e.chosen && e.opts.Version != "" {
			ver = e.opts.Version
		}
		if ver == "" && len(d.Versions) == 1 {
			ver = sortedKeys(d.Versions)[0]
		}
		if ver != "" {
			if dv = d.Versions[ver]; dv == nil {
				p.err = d.src.errAt(ErrUnknownDistro, keyPath{"distros", name},
					"distro %s has no version %q; its versions are: %s", name, ver, strings.Join(sortedKeys(d.Versions), ", "))
				return p
			}
			vc.version, vc.releaseVer = ver, dv.ReleaseVer
			if dv.releaseUnresolved {
				vc.unresolved = append(vc.unresolved, "release_ver")
			}
		}
	}
	if dv != nil && dv.HasImageStores {
		for i, n := range dv.ImageStores {
			j := slices.IndexFunc(t.Targets, func(tg *PublishTarget) bool { return tg.Name == n })
			if j < 0 {
				p.warnings = append(p.warnings, dv.src.warnAt(dv.path.with("outputs", "image-stores", index(i)), "image store %q names no [[resources.%s]] publish target", n, n))
				continue
			}
			if !slices.Contains(vc.targets, t.Targets[j]) {
				vc.targets = append(vc.targets, t.Targets[j])
			}
		}
	} else {
		vc.targets = t.Targets
	}
	return p
}

// checkSize returns the number of combinations before exclusions.
func (e *expander) checkSize() (int, error) {
	total := 0
	for _, img := range e.t.Images {
		n := 1
		for _, d := range img.Dimensions {
			n *= len(d.Values)
			if n > maxCombinations {
				break
			}
		}
		total += n
		if total > maxCombinations {
			return 0, img.src.errAt(ErrTooLarge, keyPath{"images", img.Name, "variants"},
				"the dimensions of the tree ask for more than %d combinations; expected a smaller matrix", maxCombinations)
		}
	}
	return total, nil
}

// compiledRule is a rule bound to one image's value slots.
type compiledRule struct {
	*rule
	conds []slotCond
	index int // position among the image's when rules (for the settings cache)
}

type slotCond struct {
	slot   int // index into the values of a combination; -1 for the image name
	values []string
}

func (cr *compiledRule) matches(img *Image, vals []string) bool {
	for _, c := range cr.conds {
		v := img.Name
		if c.slot >= 0 {
			v = vals[c.slot]
		}
		if !slices.Contains(c.values, v) {
			return false
		}
	}
	return true
}

// compileRules binds the tree-wide rules, then the image's own rules, to
// the image's value slots (slotOf gives the slot of a dimension name).
// A tree-wide rule that names a dimension the image lacks never applies to
// it: the whole rule is dropped, not just that condition.
func compileRules(img *Image, slotOf func(string) (int, bool), treeRules []*rule) (excl, when []*compiledRule) {
next:
	for _, ru := range slices.Concat(treeRules, img.rules) {
		cr := &compiledRule{rule: ru}
		for _, c := range ru.conds {
			slot := -1
			if c.dim != "image" {
				s, ok := slotOf(c.dim)
				if !ok {
					continue next
				}
				slot = s
			}
			cr.conds = append(cr.conds, slotCond{slot: slot, values: c.values})
		}
		if ru.exclude {
			excl = append(excl, cr)
		} else {
			cr.index = len(when)
			when = append(when, cr)
		}
	}
	return excl, when
}

// imageRun is the state of expanding one image. Variants with the same
// settings, arch and generation share one template.
type imageRun struct {
	img         *Image
	vc          *versionCtx
	hasFirmware bool // the image declares firmwares
	excl, when  []*compiledRule
	settings    map[string]*settings // matched when rules -> merged settings
	templates   map[templateKey]*template
	out         *imageResult
}

// imageResult is what expanding one image gives, before it is checked
// against the images before it (see expandImages).
type imageResult struct {
	variants []Variant
	keys     []comboKey // of every combination not excluded, in order, up to err
	warnings []keptWarning
	labels   []labelUse // publish labels of the image's templates
	err      error      // stops the image at its last combination

	combos, excluded, onlyDropped, skipDropped int
	onlySeen, skipSeen                         []bool // whether each Options.Only and Skip entry matched
}

type comboKey struct {
	key   string
	combo int // combination number, see comboText
}

type keptWarning struct {
	kind error
	w    Warning
}

// expandImages works out the images in parallel (each one alone, as many
// at once as there are processors), then takes their results in name
// order for what depends on the images before: duplicate keys, warnings
// reported once and the first error. The result is that of expanding the
// images one by one.
func (e *expander) expandImages() error {
	images := e.t.Images
	e.planVersions()
	results := make([]imageResult, len(images))
	forEach(len(images), func(i int) { results[i] = e.expandImage(images[i]) })
	for i, img := range images {
		if err := e.apply(img, &results[i]); err != nil {
			return err
		}
		results[i] = imageResult{} // applied: free it
	}
	return nil
}

// apply adds the variants of one image, checking their keys against those
// of the images before, and reports its warnings and its error.
func (e *expander) apply(img *Image, r *imageResult) error {
	e.images++
	if e.dropped(img) {
		e.distroDropped = append(e.distroDropped, img.Name)
		return nil
	}
	if _, err := e.version(e.distroOf(img)); err != nil {
		return err
	}
	if img.Distro != "" && len(e.t.Distros) > 0 && e.t.Distros[img.Distro] == nil {
		w := img.src.warnAt(keyPath{"images", img.Name, "distro"}, "no [distros.%s] table defines distro %q; its variants get no version, release-ver or distro-specific targets (defined distros: %s)",
			img.Distro, img.Distro, strings.Join(sortedKeys(e.t.Distros), ", "))
		if err := e.warn(ErrUnknownDistro, w); err != nil {
			return err
		}
	}
	e.labels = append(e.labels, r.labels...)
	e.combos += r.combos
	e.excluded += r.excluded
	e.onlyDropped += r.onlyDropped
	e.skipDropped += r.skipDropped
	for j, seen := range r.onlySeen {
		e.only[j].seen = e.only[j].seen || seen
	}
	for j, seen := range r.skipSeen {
		e.skip[j].seen = e.skip[j].seen || seen
	}
	for _, k := range r.keys {
		if prev, ok := e.keys[k.key]; ok {
			return img.src.errAt(ErrDuplicateKey, keyPath{"images", img.Name},
				"variant key %q of image %s (%s) is also the key of image %s (%s) in %s; rename an image or a dimension value",
				k.key, img.Name, comboText(img, k.combo), prev.img.Name, comboText(prev.img, prev.combo), prev.img.File)
		}
		e.keys[k.key] = keyOwner{img: img, combo: k.combo}
	}
	for _, kw := range r.warnings {
		if err := e.warn(kw.kind, kw.w); err != nil {
			return err
		}
	}
	if r.err != nil {
		return r.err
	}
	e.out = append(e.out, r.variants...)
	return nil
}

// expandImage works out the combinations of img. It reads e but does not
// change it.
func (e *expander) expandImage(img *Image) imageResult {
	r := imageResult{onlySeen: make([]bool, len(e.only)), skipSeen: make([]bool, len(e.skip))}
	if e.dropped(img) {
		return r
	}
	p := e.plans[e.distroOf(img)]
	if p.err != nil {
		return r // apply reports it
	}
	run := &imageRun{img: img, vc: p.vc, out: &r}
	// Value slots: the built-in dimensions by index, then user dimensions.
	nDims := len(img.Dimensions)
	slot := make([]int, nDims)
	nUser := 0
	for i, d := range img.Dimensions {
		if d.builtin >= 0 {
			slot[i] = d.builtin
			run.hasFirmware = run.hasFirmware || d.builtin == bFirmware
			continue
		}
		slot[i] = numBuiltins + nUser
		nUser++
	}
	slotOf := func(name string) (int, bool) {
		for i, d := range img.Dimensions {
			if d.builtin < 0 && d.Name == name {
				return slot[i], true
			}
		}
		if _, i := builtinByName(name); i >= 0 {
			return i, true
		}
		return 0, false
	}
	run.excl, run.when = compileRules(img, slotOf, e.t.rules)
	n := 1
	for _, d := range img.Dimensions {
		n *= len(d.Values) // bounded by checkSize
	}
	r.variants, r.keys = make([]Variant, 0, n), make([]comboKey, 0, n)
	vals := make([]string, numBuiltins+nUser)
	idx := make([]int, nDims)
	for combo := 0; ; combo++ {
		for i, d := range img.Dimensions {
			vals[slot[i]] = d.Values[idx[i]]
		}
		if !e.combination(run, combo, vals) {
			return r
		}
		// Next combination: the last dimension varies fastest.
		i := nDims - 1
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < len(img.Dimensions[i].Values) {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return r
		}
	}
}

// forEach calls fn(0), ..., fn(n-1) on as many goroutines as there are
// processors, and returns when all calls have returned.
func forEach(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// comboText describes combination number combo of img, for messages.
func comboText(img *Image, combo int) string {
	parts := make([]string, len(img.Dimensions))
	for i := len(img.Dimensions) - 1; i >= 0; i-- {
		d := img.Dimensions[i]
		parts[i] = d.Name + "=" + d.Values[combo%len(d.Values)]
		combo /= len(d.Values)
	}
	return strings.Join(parts, ", ")
}

// combination works out one combination; it returns false for an error
// (in run.out.err), which ends the image.
func (e *expander) combination(run *imageRun, combo int, vals []string) bool {
	img, r := run.img, run.out
	r.combos++
	if !run.hasFirmware {
		vals[bFirmware] = variant.DeriveFirmware((*[numBuiltins]string)(vals[:numBuiltins]))
	}
	for _, ru := range run.excl {
		if ru.matches(img, vals) {
			r.excluded++
			return true
		}
	}
	key := variantKey(img, vals)
	if c := variant.CheckCombination((*[numBuiltins]string)(vals[:numBuiltins])); c != nil {
		r.err = img.src.errAt(ErrCombination, keyPath{"images", img.Name, "variants"},
			"variant %s combines %s %s with %s %s, but %s %s allows %s %s only; add an exclude rule such as { %s = %q, %s = %q }",
			key, c.Dim, c.Value, c.Other, c.OtherValue, c.Dim, c.Value, c.Other, strings.Join(c.Allowed, " or "), c.Dim, c.Value, c.Other, c.OtherValue)
		return false
	}
	r.keys = append(r.keys, comboKey{key: key, combo: combo})
	// Every entry is tried (no short cut) so the counts explain filters.
	keep := true
	for j, f := range e.only {
		if f.matches(img, key, vals) {
			r.onlySeen[j] = true
		} else {
			keep = false
		}
	}
	if !keep {
		r.onlyDropped++
		return true
	}
	for j, f := range e.skip {
		if f.matches(img, key, vals) {
			r.skipSeen[j] = true
			keep = false
		}
	}
	if !keep {
		r.skipDropped++
		return true
	}
	s, err := run.settingsFor(vals)
	if err != nil {
		r.err = err
		return false
	}
	tp, err := run.template(s, key, vals[bArch], vals[bGeneration])
	if err != nil {
		r.err = err
		return false
	}
	r.variants = append(r.variants, tp.variant(img, run.vc, key, vals))
	return true
}

// settingsFor merges the when rules that match into the image settings.
// Variants with the same matching rules share one result.
func (run *imageRun) settingsFor(vals []string) (*settings, error) {
	img := run.img
	var ck []byte // the cache key: the indexes of the matching rules
	var matched []*compiledRule
	for _, r := range run.when {
		if r.matches(img, vals) {
			matched = append(matched, r)
			ck = strconv.AppendInt(ck, int64(r.index), 10)
			ck = append(ck, ',')
		}
	}
	if len(matched) == 0 {
		return img.base, nil
	}
	if s, ok := run.settings[string(ck)]; ok {
		return s, nil
	}
	// Only the top-level keys the rules touch are copied, merged and
	// decoded again; the rest is shared with the image's base settings.
	var touched []string
	for _, r := range matched {
		for k := range r.set {
			touched = append(touched, k)
		}
		for _, u := range r.unset {
			touched = append(touched, u[0])
		}
	}
	slices.Sort(touched)
	touched = slices.Compact(touched)
	eff := make(map[string]any, len(touched))
	for _, k := range touched {
		if v, ok := img.settings[k]; ok {
			eff[k] = deepCopy(v, false)
		}
	}
	for _, r := range matched {
		for _, u := range r.unset {
			deletePath(eff, u)
		}
		mergeInto(eff, r.set)
	}
	s := img.base.withoutKeys(touched)
	for _, k := range touched {
		if v, ok := eff[k]; ok {
			if err := (settingsDecoder{}).decodeKey(img.src, keyPath{"images", img.Name, k}, k, v, s, modeExpand); err != nil {
				return nil, err
			}
		}
	}
	slices.Sort(s.unresolved)
	if run.settings == nil {
		run.settings = map[string]*settings{}
	}
	run.settings[string(ck)] = s
	return s, nil
}

// variantKey forms the variant key: the image name, arch and platform, then
// the generation (gen1/gen2) if the image declares generations, the firmware
// if it declares firmwares, and the values of user dimensions in declared
// order, joined by "-". Characters other than letters, digits, ".", "_"
// and "-" become "_".
func variantKey(img *Image, vals []string) string {
	var buf [8]string
	parts := append(buf[:0], img.Name)
	nUser := 0
	for _, dim := range img.Dimensions {
		var v string
		if dim.builtin >= 0 {
			if v = vals[dim.builtin]; v == "" {
				continue
			}
			if dv := variant.Canonical(dim.builtin, v); dv != nil {
				v = dv.KeyPart
			}
		} else {
			v = vals[numBuiltins+nUser]
			nUser++
		}
		parts = append(parts, v)
	}
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('-')
		}
		writeKeyPart(&b, p)
	}
	return b.String()
}

func keyByteOK(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

func writeKeyPart(b *strings.Builder, s string) {
	clean := true
	for i := 0; i < len(s); i++ {
		if !keyByteOK(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		b.WriteString(s)
		return
	}
	for _, r := range s {
		if r < 128 && keyByteOK(byte(r)) {
			b.WriteByte(byte(r))
		} else {
			b.WriteByte('_')
		}
	}
}

// template holds what variants with the same settings, arch and generation
// share. Its slices and maps are built once per Expand call and shared, read
// only, by those variants (never with the Tree).
type template struct {
	description, defType, defPath string
	ociArch, azureArch            string
	profiles, labels, channels    []string
	capabilities                  map[string]bool
	delivery                      variant.Delivery
	targets                       []Target
	unresolved                    []string
}

type templateKey struct {
	s         *settings
	arch, gen string
}

// template returns the shared part of a variant, building it on first use;
// its warnings and publish labels go to the image's result.
func (run *imageRun) template(s *settings, key, arch, gen string) (*template, error) {
	tk := templateKey{s, arch, gen}
	if tp, ok := run.templates[tk]; ok {
		return tp, nil
	}
	img, vc := run.img, run.vc
	tp := &template{
		description:  s.description,
		defType:      s.defType,
		defPath:      s.defPath,
		capabilities: maps.Clone(s.capabilities),
		targets:      make([]Target, 0, len(vc.targets)),
	}
	if tp.capabilities == nil {
		tp.capabilities = map[string]bool{}
	}
	tp.profiles, tp.labels, tp.channels = cloneLists(s.profiles, s.labels, s.channels)
	tp.ociArch, tp.azureArch = variant.OCIArch(arch), variant.AzureArch(arch)
	// An image without a definition is built elsewhere (source_image,
	// another builder): its variants have no definition fields. A
	// definition that is given needs its path.
	if s.defGiven {
		if tp.defType == "" && !slices.Contains(s.unresolved, "definition.type") {
			tp.defType = definitionTypes[0]
		}
		if tp.defPath == "" && !slices.Contains(s.unresolved, "definition.path") && !slices.Contains(s.unresolved, "definition") {
			return nil, img.src.errAt(ErrValue, keyPath{"images", img.Name, "definition"},
				"variant %s has a definition without a path; expected definition = { type = \"kiwi\", path = \"NAME.kiwi\" }, or no definition for disks made elsewhere (source_image)", key)
		}
	}
	delivery := map[string]any{}
	switch {
	case s.deliveryOwned:
		delivery = s.delivery
	case s.delivery != nil:
		delivery = deepCopy(s.delivery, true).(map[string]any)
	}
	dj, err := json.Marshal(delivery) // sorted keys, numbers as decoded
	if err != nil {
		return nil, img.src.errAt(ErrValue, keyPath{"images", img.Name, "delivery"}, "cannot encode as JSON: %v", err)
	}
	tp.delivery = variant.Delivery(dj)
	unresolved := slices.Concat(s.unresolved, vc.unresolved)
	for _, tg := range vc.targets {
		if !intersects(s.labels, tg.Labels) {
			continue
		}
		name, ok := targetImage(tg, arch, gen)
		if !ok {
			// Reported by apply, which stops there in strict mode.
			run.out.warnings = append(run.out.warnings, keptWarning{ErrTargets, tg.src.warnAt(tg.path.with("images"),
				"publish target %s has no image for arch %s%s; image %s is not published there for it",
				tg.Name, arch, genSuffix(gen), img.Name)})
			continue
		}
		if err := checkDestination(tg, key, arch, gen, name); err != nil {
			return nil, err
		}
		tp.targets = append(tp.targets, Target{Name: tg.Name, InterfaceType: tg.InterfaceType, Backend: tg.Backend, ResourceURN: tg.ResourceURN, ImageName: name})
		unresolved = append(unresolved, tg.unresolved...)
	}
	labels := &run.out.labels
	for _, l := range s.labels {
		i := slices.IndexFunc(*labels, func(u labelUse) bool { return u.label == l })
		if i < 0 {
			i = len(*labels)
			*labels = append(*labels, labelUse{img: img, label: l, vc: vc})
		}
		use := &(*labels)[i]
		for _, tg := range vc.targets {
			if slices.Contains(tg.Labels, l) {
				use.matched = true
				break
			}
		}
	}
	slices.Sort(unresolved)
	tp.unresolved = slices.Compact(unresolved)
	if tp.unresolved == nil {
		tp.unresolved = []string{}
	}
	if run.templates == nil {
		run.templates = map[templateKey]*template{}
	}
	run.templates[tk] = tp
	return tp, nil
}

// variant is the output for one combination (vals are its values).
func (tp *template) variant(img *Image, vc *versionCtx, key string, vals []string) Variant {
	return Variant{
		Key:              key,
		Image:            img.Name,
		Description:      tp.description,
		Distro:           vc.distro,
		DistroVersion:    vc.version,
		ReleaseVer:       vc.releaseVer,
		Arch:             vals[bArch],
		OCIArch:          tp.ociArch, // the template's arch is vals[bArch]
		AzureArch:        tp.azureArch,
		Platform:         vals[bPlatform],
		HyperVGeneration: vals[bGeneration],
		Firmware:         vals[bFirmware],
		DefinitionType:   tp.defType,
		DefinitionPath:   tp.defPath,
		Profiles:         tp.profiles,
		Dimensions:       dimensions(img, vals),
		Capabilities:     tp.capabilities,
		PublishLabels:    tp.labels,
		PublishChannels:  tp.channels,
		Targets:          tp.targets,
		Unresolved:       tp.unresolved,
		Delivery:         tp.delivery,
	}
}

// dimensions is Variant.Dimensions of one combination.
func dimensions(img *Image, vals []string) map[string]string {
	dims := make(map[string]string, len(vals))
	for i := range numBuiltins {
		if vals[i] != "" {
			dims[builtinDims[i].Name] = vals[i]
		}
	}
	nUser := 0
	for _, d := range img.Dimensions {
		if d.builtin < 0 {
			dims[d.Name] = vals[numBuiltins+nUser]
			nUser++
		}
	}
	return dims
}

func genSuffix(g string) string {
	if g == "" {
		return ""
	}
	return " and Hyper-V generation " + g
}

// targetImage picks the target's image name for an arch (and generation):
// the first entry for the arch, else the first entry without arch (it
// serves every arch). A target without images publishes every arch under
// an empty name.
func targetImage(tg *PublishTarget, arch, gen string) (string, bool) {
	if len(tg.Images) == 0 {
		return "", true
	}
	for _, want := range []string{arch, ""} {
		for _, ti := range tg.Images {
			if ti.Arch == want && (ti.HyperVGeneration == "" || ti.HyperVGeneration == gen) {
				return ti.Name, true
			}
		}
	}
	return "", false
}

// namedInterfaces are the interface types whose publishers need the
// target's resource-urn and an image name (a repository, a gallery image
// definition) to publish anything.
var namedInterfaces = []string{variant.InterfaceAzureComputeGallery, variant.InterfaceOCIRegistry}

// checkDestination fails when a target of a named interface type cannot
// name the destination of a variant published there (name is the image
// name targetImage chose): the publisher would fail after the disk is
// built. "*" (filled in by a later step) passes.
func checkDestination(tg *PublishTarget, key, arch, gen, name string) error {
	if !slices.Contains(namedInterfaces, tg.InterfaceType) {
		return nil
	}
	what := map[string]string{variant.InterfaceAzureComputeGallery: "the gallery's resource id", variant.InterfaceOCIRegistry: "the registry host, as ghcr.io/OWNER"}[tg.InterfaceType]
	if tg.ResourceURN == "" && !slices.Contains(tg.unresolved, "targets."+keyPath{tg.Name}.String()+".resource_urn") {
		return tg.src.errAt(ErrTargets, tg.path, "publish target %s (%s) has no resource-urn, so variant %s cannot be published there; expected resource-urn = %s (or \"*\" when a later step sets it)",
			tg.Name, tg.InterfaceType, key, what)
	}
	if name != "" {
		return nil
	}
	thing := map[string]string{variant.InterfaceAzureComputeGallery: "image definition", variant.InterfaceOCIRegistry: "repository"}[tg.InterfaceType]
	p := tg.path
	if len(tg.Images) > 0 {
		p = p.with("images")
	}
	return tg.src.errAt(ErrTargets, p, "publish target %s (%s) names no %s for arch %s%s, so variant %s cannot be published there; expected images = [{ name = \"...\" }] (an entry without arch serves every arch; \"*\" when a later step sets it)",
		tg.Name, tg.InterfaceType, thing, arch, genSuffix(gen), key)
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// cloneLists copies three lists into one new array. The copies are never
// nil (an empty list is [] in JSON) and each is capped at its length, so
// appending to one cannot overwrite the next.
func cloneLists(a, b, c []string) (ac, bc, cc []string) {
	buf := make([]string, 0, len(a)+len(b)+len(c))
	buf = append(append(append(buf, a...), b...), c...)
	i, j := len(a), len(a)+len(b)
	return buf[:i:i], buf[i:j:j], buf[j:]
}

// finish reports unmatched labels and filters, and fails on zero variants.
func (e *expander) finish() error {
	var unmatched []labelUse
	for _, use := range e.labels {
		if !use.matched {
			unmatched = append(unmatched, use)
		}
	}
	slices.SortFunc(unmatched, func(a, b labelUse) int {
		return strings.Compare(a.img.Name+"\x00"+a.label, b.img.Name+"\x00"+b.label)
	})
	for _, use := range unmatched {
		var names []string
		for _, tg := range use.vc.targets {
			names = append(names, tg.Name)
		}
		considered := "none"
		if len(names) > 0 {
			considered = strings.Join(names, ", ")
		}
		where := "the tree"
		if use.vc.distro != "" {
			where = "distro " + use.vc.distro
			if use.vc.version != "" {
				where += " version " + use.vc.version
			}
		}
		w := use.img.src.warnAt(keyPath{"images", use.img.Name, "publish", "labels"},
			"publish label %q matches no publish target of %s (targets considered: %s)", use.label, where, considered)
		if !e.opts.Lenient && len(e.t.Targets) > 0 && !slices.ContainsFunc(e.t.Targets, func(tg *PublishTarget) bool { return slices.Contains(tg.Labels, use.label) }) {
			return &ConfigError{File: w.File, Line: w.Line, Col: w.Col, Key: w.Key, Kind: ErrUnmatchedLabel,
				Msg: w.Msg + "; no target of the tree carries it (a typo?); targets' labels: " + e.targetLabels() + " (lenient, strict = false in osimage-matrix, lets it pass as a warning)"}
		}
		if err := e.warn(ErrUnmatchedLabel, w); err != nil {
			return err
		}
	}
	for _, f := range e.skip {
		if !f.seen && len(e.out) > 0 {
			if err := e.warn(ErrNoVariants, Warning{Key: "skip", Msg: fmt.Sprintf("skip entry %q matches no variant", f.raw)}); err != nil {
				return err
			}
		}
	}
	if len(e.out) > 0 {
		return nil
	}
	return &ConfigError{Kind: ErrNoVariants, Msg: e.emptyReport()}
}

// targetLabels lists the publish labels the tree's targets carry.
func (e *expander) targetLabels() string {
	var ls []string
	for _, tg := range e.t.Targets {
		ls = append(ls, tg.Labels...)
	}
	slices.Sort(ls)
	return strings.Join(slices.Compact(ls), ", ")
}

// emptyReport explains which filter removed what.
func (e *expander) emptyReport() string {
	if len(e.t.Images) == 0 {
		return fmt.Sprintf("no variants: the tree (%d files under %s) declares no [images.NAME] table", len(e.t.Files), e.t.Root)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "no variants left: %d images", e.images)
	if len(e.distroDropped) > 0 {
		fmt.Fprintf(&b, "; distro %q dropped %d (%s)", e.opts.Distro, len(e.distroDropped), strings.Join(e.distroDropped, ", "))
	}
	fmt.Fprintf(&b, "; %d combinations", e.combos)
	fmt.Fprintf(&b, "; exclude rules removed %d", e.excluded)
	if len(e.only) > 0 {
		fmt.Fprintf(&b, "; only %s removed %d", quoteList(e.opts.Only), e.onlyDropped)
		var none []string
		for _, f := range e.only {
			if !f.seen {
				none = append(none, strconv.Quote(f.raw))
			}
		}
		if len(none) > 0 {
			fmt.Fprintf(&b, " (%s matches no image name or dimension value)", strings.Join(none, ", "))
		} else if e.onlyDropped > 0 {
			b.WriteString(" (each entry matches some variants, but no variant matches all of them)")
		}
	}
	if len(e.skip) > 0 {
		fmt.Fprintf(&b, "; skip %s removed %d", quoteList(e.opts.Skip), e.skipDropped)
	}
	return b.String()
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// filterEntry is one only/skip entry with its built-in spellings resolved.
type filterEntry struct {
	raw   string
	canon [numBuiltins]string
	seen  bool // the entry matched a variant
}

func compileFilters(list []string) []*filterEntry {
	out := make([]*filterEntry, 0, len(list))
	for _, s := range list {
		f := &filterEntry{raw: s}
		for i := range builtinDims {
			f.canon[i], _ = builtinDims[i].Normalize(s)
		}
		out = append(out, f)
	}
	return out
}

// matches reports whether the entry matches a combination (the image
// workers count the matches, in seen).
func (f *filterEntry) matches(img *Image, key string, vals []string) bool {
	ok := f.raw == img.Name || f.raw == key
	for i := 0; !ok && i < len(vals); i++ {
		if i < numBuiltins {
			ok = vals[i] != "" && f.canon[i] == vals[i]
		} else {
			ok = f.raw == vals[i]
		}
	}
	return ok
}
