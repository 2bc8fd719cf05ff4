package imagedef

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
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
	// Strict turns Expand's warnings (a publish label that matches no target,
	// a target without an image for the variant's arch, an image-stores entry
	// that names no target, an image that names an undefined distro, a skip
	// entry that matches nothing) into errors.
	Strict bool
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
	e := &expander{t: t, opts: opts, versions: map[string]*versionCtx{}, labels: map[[2]string]*labelUse{}, templates: map[templateKey]*template{}}
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
	for _, img := range t.Images {
		if err := e.image(img); err != nil {
			return nil, nil, err
		}
	}
	if err := e.finish(); err != nil {
		return nil, nil, err
	}
	return e.out, e.warnings, nil
}

type expander struct {
	t         *Tree
	opts      Options
	chosen    string // distro for images that name none
	versions  map[string]*versionCtx
	only      []*filterEntry
	skip      []*filterEntry
	keys      map[string]keyOwner
	labels    map[[2]string]*labelUse // (image, label) -> use
	templates map[templateKey]*template
	warned    map[string]bool
	warnings  []Warning
	out       []Variant

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

// version resolves the distro version an image of distro name builds for.
func (e *expander) version(name string) (*versionCtx, error) {
	if vc, ok := e.versions[name]; ok {
		return vc, nil
	}
	t := e.t
	vc := &versionCtx{distro: name}
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
				return nil, d.src.errAt(ErrUnknownDistro, keyPath{"distros", name},
					"distro %s has no version %q; its versions are: %s", name, ver, strings.Join(sortedKeys(d.Versions), ", "))
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
				w := dv.src.warnAt(dv.path.with("outputs", "image-stores", index(i)), "image store %q names no [[resources.%s]] publish target", n, n)
				if err := e.warn(ErrTargets, w); err != nil {
					return nil, err
				}
				continue
			}
			if !slices.Contains(vc.targets, t.Targets[j]) {
				vc.targets = append(vc.targets, t.Targets[j])
			}
		}
	} else {
		vc.targets = t.Targets
	}
	e.versions[name] = vc
	return vc, nil
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
// the image's value slots. Tree-wide rules that name a dimension the image
// lacks never apply to it.
func compileRules(img *Image, slotOf map[string]int, treeRules []*rule) (excl, when []*compiledRule) {
	for _, list := range [][]*rule{treeRules, img.rules} {
	next:
		for _, ru := range list {
			cr := &compiledRule{rule: ru}
			for _, c := range ru.conds {
				slot := -1
				if c.dim != "image" {
					s, ok := slotOf[c.dim]
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
	}
	return excl, when
}

// imageRun is the state of expanding one image.
type imageRun struct {
	img         *Image
	vc          *versionCtx
	dimSlot     []int // value slot of each dimension
	hasFirmware bool  // the image declares firmwares
	excl, when  []*compiledRule
	settings    map[string]*settings // matched when rules -> merged settings
}

// image expands one image.
func (e *expander) image(img *Image) error {
	e.images++
	if e.opts.Distro != "" && img.Distro != "" && img.Distro != e.opts.Distro {
		e.distroDropped = append(e.distroDropped, img.Name)
		return nil
	}
	distro := img.Distro
	if distro == "" {
		distro = e.chosen
	}
	vc, err := e.version(distro)
	if err != nil {
		return err
	}
	if img.Distro != "" && len(e.t.Distros) > 0 && e.t.Distros[img.Distro] == nil {
		w := img.src.warnAt(keyPath{"images", img.Name, "distro"}, "no [distros.%s] table defines distro %q; its variants get no version, release-ver or distro-specific targets (defined distros: %s)",
			img.Distro, img.Distro, strings.Join(sortedKeys(e.t.Distros), ", "))
		if err := e.warn(ErrUnknownDistro, w); err != nil {
			return err
		}
	}
	run := &imageRun{img: img, vc: vc, dimSlot: make([]int, len(img.Dimensions)), settings: map[string]*settings{}}
	// Value slots: the built-in dimensions by index, then user dimensions.
	slotOf := make(map[string]int, numBuiltins+len(img.Dimensions))
	for i := range builtinDims {
		slotOf[builtinDims[i].name] = i
	}
	nUser := 0
	for i, d := range img.Dimensions {
		if d.builtin >= 0 {
			run.dimSlot[i] = d.builtin
			run.hasFirmware = run.hasFirmware || d.builtin == bFirmware
			continue
		}
		run.dimSlot[i] = numBuiltins + nUser
		slotOf[d.Name] = run.dimSlot[i]
		nUser++
	}
	run.excl, run.when = compileRules(img, slotOf, e.t.rules)

	vals := make([]string, numBuiltins+nUser)
	idx := make([]int, len(img.Dimensions))
	for combo := 0; ; combo++ {
		for i, d := range img.Dimensions {
			vals[run.dimSlot[i]] = d.Values[idx[i]]
		}
		if err := e.combination(run, combo, vals); err != nil {
			return err
		}
		// Next combination: the last dimension varies fastest.
		i := len(idx) - 1
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < len(img.Dimensions[i].Values) {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return nil
		}
	}
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

func (e *expander) combination(run *imageRun, combo int, vals []string) error {
	img := run.img
	e.combos++
	if !run.hasFirmware {
		vals[bFirmware] = deriveFirmware((*[numBuiltins]string)(vals[:numBuiltins]))
	}
	for _, r := range run.excl {
		if r.matches(img, vals) {
			e.excluded++
			return nil
		}
	}
	key := variantKey(img, vals)
	if dim, val, other, otherVal, allowed, ok := checkCombination((*[numBuiltins]string)(vals[:numBuiltins])); !ok {
		return img.src.errAt(ErrCombination, keyPath{"images", img.Name, "variants"},
			"variant %s combines %s %s with %s %s, but %s %s allows %s %s only; add an exclude rule such as { %s = %q, %s = %q }",
			key, dim, val, other, otherVal, dim, val, other, strings.Join(allowed, " or "), dim, val, other, otherVal)
	}
	if prev, ok := e.keys[key]; ok {
		return img.src.errAt(ErrDuplicateKey, keyPath{"images", img.Name},
			"variant key %q of image %s (%s) is also the key of image %s (%s) in %s; rename an image or a dimension value",
			key, img.Name, comboText(img, combo), prev.img.Name, comboText(prev.img, prev.combo), prev.img.File)
	}
	e.keys[key] = keyOwner{img: img, combo: combo}
	// Every entry is tried (no short cut) so the counts explain filters.
	keep := true
	for _, f := range e.only {
		if !f.matches(img, key, vals) {
			keep = false
		}
	}
	if !keep {
		e.onlyDropped++
		return nil
	}
	for _, f := range e.skip {
		if f.matches(img, key, vals) {
			keep = false
		}
	}
	if !keep {
		e.skipDropped++
		return nil
	}
	s, err := e.settingsFor(run, vals)
	if err != nil {
		return err
	}
	tp, err := e.template(run, s, key, vals[bArch], vals[bGeneration])
	if err != nil {
		return err
	}
	e.out = append(e.out, tp.variant(img, run.vc, key, vals))
	return nil
}

// settingsFor merges the when rules that match into the image settings.
// Variants with the same matching rules share one result.
func (e *expander) settingsFor(run *imageRun, vals []string) (*settings, error) {
	img := run.img
	var matched []*compiledRule
	var ck []byte
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
			if !slices.Contains(touched, k) {
				touched = append(touched, k)
			}
		}
		for _, u := range r.unset {
			if !slices.Contains(touched, u[0]) {
				touched = append(touched, u[0])
			}
		}
	}
	slices.Sort(touched)
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
		if r.set != nil {
			mergeInto(eff, r.set)
		}
	}
	s := img.base
	base := keyPath{"images", img.Name}
	for _, k := range touched {
		s = s.withoutKey(k)
		if v, ok := eff[k]; ok {
			if err := (settingsDecoder{}).decodeKey(img.src, base, k, v, s, modeExpand); err != nil {
				return nil, err
			}
		}
	}
	slices.Sort(s.unresolved)
	run.settings[string(ck)] = s
	return s, nil
}

// variantKey forms the variant key: the image name, arch and platform, then
// the generation (gen1/gen2) if the image declares generations, the firmware
// if it declares firmwares, and the values of user dimensions in declared
// order, joined by "-". Characters other than letters, digits, ".", "_"
// and "-" become "_".
func variantKey(img *Image, vals []string) string {
	var b strings.Builder
	b.Grow(64)
	writeKeyPart(&b, img.Name)
	nUser := 0
	for _, dim := range img.Dimensions {
		var v string
		if dim.builtin >= 0 {
			if v = vals[dim.builtin]; v == "" {
				continue
			}
			if dv := valueIndex[dim.builtin][v]; dv != nil {
				v = dv.keyPart
			}
		} else {
			v = vals[numBuiltins+nUser]
			nUser++
		}
		b.WriteByte('-')
		writeKeyPart(&b, v)
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
	profiles, labels, channels    []string
	capabilities                  map[string]bool
	delivery                      map[string]any
	deliveryJSON                  string
	targets                       []Target
	unresolved                    []string
}

type templateKey struct {
	s         *settings
	arch, gen string
}

// template returns the shared part of a variant, building it on first use.
func (e *expander) template(run *imageRun, s *settings, key, arch, gen string) (*template, error) {
	tk := templateKey{s, arch, gen}
	if tp, ok := e.templates[tk]; ok {
		return tp, nil
	}
	img, vc := run.img, run.vc
	tp := &template{
		description:  s.description,
		defType:      s.defType,
		defPath:      s.defPath,
		profiles:     cloneOrEmpty(s.profiles),
		labels:       cloneOrEmpty(s.labels),
		channels:     cloneOrEmpty(s.channels),
		capabilities: make(map[string]bool, len(s.capabilities)),
		targets:      []Target{},
	}
	if tp.defType == "" && !slices.Contains(s.unresolved, "definition.type") {
		tp.defType = definitionTypes[0]
	}
	if tp.defPath == "" && !slices.Contains(s.unresolved, "definition.path") && !slices.Contains(s.unresolved, "definition") {
		return nil, img.src.errAt(ErrValue, keyPath{"images", img.Name, "definition"},
			"variant %s has no definition path; expected definition = { type = \"kiwi\", path = \"NAME.kiwi\" }", key)
	}
	for k, b := range s.capabilities {
		tp.capabilities[k] = b
	}
	switch {
	case s.delivery == nil:
		tp.delivery = map[string]any{}
	case s.deliveryOwned:
		tp.delivery = s.delivery
	default:
		tp.delivery = deepCopy(s.delivery, false).(map[string]any)
	}
	dj, err := appendJSON(make([]byte, 0, 512), tp.delivery)
	if err != nil {
		return nil, img.src.errAt(ErrValue, keyPath{"images", img.Name, "delivery"}, "cannot encode as JSON: %v", err)
	}
	tp.deliveryJSON = string(dj)
	unresolved := slices.Concat(s.unresolved, vc.unresolved)
	for _, tg := range vc.targets {
		if !intersects(s.labels, tg.Labels) {
			continue
		}
		name, ok := targetImage(tg, arch, gen)
		if !ok {
			w := tg.src.warnAt(tg.path.with("images"), "publish target %s has no image for arch %s%s; image %s is not published there for it",
				tg.Name, arch, genSuffix(gen), img.Name)
			if err := e.warn(ErrTargets, w); err != nil {
				return nil, err
			}
			continue
		}
		tp.targets = append(tp.targets, Target{Name: tg.Name, InterfaceType: tg.InterfaceType, Backend: tg.Backend, ResourceURN: tg.ResourceURN, ImageName: name})
		unresolved = append(unresolved, tg.unresolved...)
	}
	for _, l := range s.labels {
		k := [2]string{img.Name, l}
		use := e.labels[k]
		if use == nil {
			use = &labelUse{img: img, vc: vc}
			e.labels[k] = use
		}
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
	e.templates[tk] = tp
	return tp, nil
}

// variant builds the output for one combination.
func (tp *template) variant(img *Image, vc *versionCtx, key string, vals []string) Variant {
	v := Variant{
		Key:              key,
		Image:            img.Name,
		Description:      tp.description,
		Distro:           vc.distro,
		DistroVersion:    vc.version,
		ReleaseVer:       vc.releaseVer,
		Arch:             vals[bArch],
		Platform:         vals[bPlatform],
		HyperVGeneration: vals[bGeneration],
		Firmware:         vals[bFirmware],
		DefinitionType:   tp.defType,
		DefinitionPath:   tp.defPath,
		Profiles:         tp.profiles,
		Dimensions:       make(map[string]string, len(vals)),
		Capabilities:     tp.capabilities,
		PublishLabels:    tp.labels,
		PublishChannels:  tp.channels,
		Targets:          tp.targets,
		Unresolved:       tp.unresolved,
		Delivery:         tp.delivery,
		File:             img.File,
		deliveryJSON:     tp.deliveryJSON,
	}
	v.OCIArch, v.AzureArch = archSpellings(v.Arch)
	for i := range numBuiltins {
		if vals[i] != "" {
			v.Dimensions[builtinDims[i].name] = vals[i]
		}
	}
	nUser := 0
	for _, d := range img.Dimensions {
		if d.builtin < 0 {
			v.Dimensions[d.Name] = vals[numBuiltins+nUser]
			nUser++
		}
	}
	return v
}

func genSuffix(g string) string {
	if g == "" {
		return ""
	}
	return " and Hyper-V generation " + g
}

// targetImage picks the target's image name for an arch (and generation).
// A target without images publishes every arch under an empty name.
func targetImage(tg *PublishTarget, arch, gen string) (string, bool) {
	if len(tg.Images) == 0 {
		return "", true
	}
	for _, ti := range tg.Images {
		if ti.Arch == arch && (ti.HyperVGeneration == "" || ti.HyperVGeneration == gen) {
			return ti.Name, true
		}
	}
	return "", false
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func cloneOrEmpty(s []string) []string {
	if len(s) == 0 {
		return []string{}
	}
	return slices.Clone(s)
}

// finish reports unmatched labels and filters, and fails on zero variants.
func (e *expander) finish() error {
	keys := make([][2]string, 0, len(e.labels))
	for k := range e.labels {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) })
	for _, k := range keys {
		use := e.labels[k]
		if use.matched {
			continue
		}
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
			"publish label %q matches no publish target of %s (targets considered: %s)", k[1], where, considered)
		if err := e.warn(ErrUnmatchedLabel, w); err != nil {
			return err
		}
	}
	for _, f := range e.skip {
		if f.seen == 0 && len(e.out) > 0 {
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
			if f.seen == 0 {
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
	seen  int // variants this entry matched
}

func compileFilters(list []string) []*filterEntry {
	out := make([]*filterEntry, 0, len(list))
	for _, s := range list {
		f := &filterEntry{raw: s}
		for i := range builtinDims {
			f.canon[i], _ = builtinDims[i].normalize(s)
		}
		out = append(out, f)
	}
	return out
}

func (f *filterEntry) matches(img *Image, key string, vals []string) bool {
	ok := f.raw == img.Name || f.raw == key
	for i := 0; !ok && i < len(vals); i++ {
		if i < numBuiltins {
			ok = vals[i] != "" && f.canon[i] == vals[i]
		} else {
			ok = f.raw == vals[i]
		}
	}
	if ok {
		f.seen++
	}
	return ok
}
