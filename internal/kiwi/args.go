// Package kiwi runs KIWI's `kiwi-ng system build` and reads what it made.
//
// It is split the usual way: Options.Args computes the command line (pure,
// table-tested), Runner executes it (I/O: process group, streamed output, log
// file, cancellation), ParseResult reads kiwi.result.json into typed paths,
// and ExtractKIS unpacks a kis archive. Nothing here imports Packer; the
// builder's glue turns its HCL config into Options and the Runner's lines
// into UI messages.
package kiwi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Repo is one repository for `--add-repo` or `--set-repo`, in the fields
// KIWI 9.24 understands, in its order:
// source,type,alias,priority,imageinclude,package_gpgcheck,{signing_keys},components,distribution,repo_gpgcheck.
type Repo struct {
	// Source is the repository URI (http://, https://, dir://, obs://, ...).
	Source string
	// Type is the KIWI repository type: apt-deb, rpm-md, rpm-dir, ...
	// Empty lets KIWI use its default (rpm-md), or for set-repo keeps the
	// description's type.
	Type string
	// Alias names the repository; empty lets KIWI derive one.
	Alias string
	// Priority is the package manager's priority; 0 means unset.
	Priority int
	// ImageInclude keeps the repository configured inside the image.
	ImageInclude bool
	// PackageGPGCheck turns package signature checks on or off; nil keeps
	// KIWI's default.
	PackageGPGCheck *bool
	// SigningKeys are key file URIs (file:///...) trusted for this repository.
	SigningKeys []string
	// Components are the Debian components (main, contrib, ...).
	Components []string
	// Distribution is the Debian suite (bookworm, ...).
	Distribution string
	// RepoGPGCheck turns repository metadata signature checks on or off;
	// nil keeps KIWI's default.
	RepoGPGCheck *bool
}

// Validate reports fields KIWI's comma format cannot carry: KIWI splits the
// value at commas, signing keys at semicolons, and components at spaces.
func (r Repo) Validate() error {
	if r.Source == "" {
		return errors.New("repository source is empty")
	}
	plain := []struct{ field, value string }{
		{"source", r.Source}, {"type", r.Type}, {"alias", r.Alias}, {"distribution", r.Distribution},
	}
	for _, f := range plain {
		if strings.ContainsAny(f.value, ",{}") {
			return fmt.Errorf("repository %s %q: KIWI cannot take ',', '{' or '}' there", f.field, f.value)
		}
		if strings.TrimSpace(f.value) != f.value || strings.ContainsAny(f.value, "\n\r") {
			return fmt.Errorf("repository %s %q: leading/trailing spaces or line breaks", f.field, f.value)
		}
	}
	if r.Priority < 0 {
		return fmt.Errorf("repository %s: priority %d is negative", r.Source, r.Priority)
	}
	for _, k := range r.SigningKeys {
		if k == "" || strings.ContainsAny(k, ",;{} ") {
			return fmt.Errorf("repository %s: signing key %q is empty or holds one of ',;{} '", r.Source, k)
		}
	}
	for _, c := range r.Components {
		if c == "" || strings.ContainsAny(c, ", {}\t") {
			return fmt.Errorf("repository %s: component %q is empty or holds a space, tab, ',', '{' or '}'", r.Source, c)
		}
	}
	return nil
}

// String renders the repository in KIWI's comma format. Fields after the
// last one set are left out, so KIWI sees them as unset rather than empty.
func (r Repo) String() string {
	fields := []string{
		r.Source,
		r.Type,
		r.Alias,
		"",
		"",
		triState(r.PackageGPGCheck),
		"",
		strings.Join(r.Components, " "),
		r.Distribution,
		triState(r.RepoGPGCheck),
	}
	if r.Priority != 0 {
		fields[3] = strconv.Itoa(r.Priority)
	}
	if r.ImageInclude {
		fields[4] = "true"
	}
	if len(r.SigningKeys) > 0 {
		fields[6] = "{" + strings.Join(r.SigningKeys, ";") + "}"
	}
	n := len(fields)
	for n > 1 && fields[n-1] == "" {
		n--
	}
	return strings.Join(fields[:n], ",")
}

func triState(b *bool) string {
	if b == nil {
		return ""
	}
	return strconv.FormatBool(*b)
}

// Options is one `kiwi-ng ... system build` invocation.
type Options struct {
	// Description is the directory holding config.xml or a *.kiwi file.
	Description string
	// TargetDir receives the image files and kiwi.result.json.
	TargetDir string

	// Profiles select description profiles; each becomes --profile=NAME.
	Profiles []string
	// Type selects the build type (oem, kis, ...) when the description has
	// several.
	Type string
	// TargetArch only renames outputs; KIWI does not cross-build.
	TargetArch string
	// KiwiFile picks a description file other than config.xml.
	KiwiFile string
	// LogFile asks KIWI to write its own log (--logfile); the Runner keeps a
	// copy of the console output regardless.
	LogFile string
	// LogLevel is KIWI's --loglevel (10 debug, 20 info, ...); 0 means unset.
	LogLevel int
	// Config is a KIWI runtime config file (--config), for example one that
	// disables runtime checks.
	Config string
	// GlobalArgs are extra global options, placed before `system build`.
	GlobalArgs []string

	// SetRepo replaces the description's first repository; only its non-empty
	// fields are changed.
	SetRepo *Repo
	// AddRepos are appended to the description's repositories.
	AddRepos []Repo
	// AddPackages are installed on top of the description's packages.
	AddPackages []string
	// IgnoreRepos drops every repository of the description.
	IgnoreRepos bool
	// BuildArgs are extra `system build` options, placed last.
	BuildArgs []string
}

// Args returns kiwi-ng's arguments (without the program name): global
// options, then `system build` and its options. Values are attached with '='
// so a value that starts with '-' cannot be read as an option.
func (o Options) Args() ([]string, error) {
	if o.Description == "" {
		return nil, errors.New("kiwi: description directory is empty")
	}
	if o.TargetDir == "" {
		return nil, errors.New("kiwi: target directory is empty")
	}
	var args []string
	for _, p := range o.Profiles {
		if p == "" || strings.ContainsAny(p, " \t\n,") {
			return nil, fmt.Errorf("kiwi: profile %q is empty or holds a space or ','", p)
		}
		args = append(args, "--profile="+p)
	}
	opt := func(name, value string) {
		if value != "" {
			args = append(args, name+"="+value)
		}
	}
	opt("--type", o.Type)
	opt("--target-arch", o.TargetArch)
	opt("--kiwi-file", o.KiwiFile)
	opt("--logfile", o.LogFile)
	if o.LogLevel < 0 {
		return nil, fmt.Errorf("kiwi: log level %d is negative", o.LogLevel)
	}
	if o.LogLevel > 0 {
		opt("--loglevel", strconv.Itoa(o.LogLevel))
	}
	opt("--config", o.Config)
	args = append(args, o.GlobalArgs...)

	args = append(args, "system", "build", "--description="+o.Description, "--target-dir="+o.TargetDir)
	if o.IgnoreRepos {
		args = append(args, "--ignore-repos")
	}
	if o.SetRepo != nil {
		if err := o.SetRepo.Validate(); err != nil {
			return nil, fmt.Errorf("kiwi: set-repo: %w", err)
		}
		args = append(args, "--set-repo="+o.SetRepo.String())
	}
	for i, r := range o.AddRepos {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("kiwi: add-repo #%d: %w", i+1, err)
		}
		args = append(args, "--add-repo="+r.String())
	}
	for _, p := range o.AddPackages {
		if p == "" || strings.ContainsAny(p, " \t\n") {
			return nil, fmt.Errorf("kiwi: package name %q is empty or holds a space", p)
		}
		args = append(args, "--add-package="+p)
	}
	args = append(args, o.BuildArgs...)
	return args, nil
}
