package kiwi

import (
	"reflect"
	"strings"
	"testing"
)

func boolp(b bool) *bool { return &b }

func TestRepoStringUsesKiwisCommaFormat(t *testing.T) {
	tests := []struct {
		name string
		repo Repo
		want string
	}{
		{"source only", Repo{Source: "http://deb.debian.org/debian"}, "http://deb.debian.org/debian"},
		{"type and alias", Repo{Source: "https://x/repo", Type: "rpm-md", Alias: "extra"}, "https://x/repo,rpm-md,extra"},
		{"priority", Repo{Source: "https://x", Type: "rpm-md", Priority: 42}, "https://x,rpm-md,,42"},
		{"imageinclude", Repo{Source: "https://x", ImageInclude: true}, "https://x,,,,true"},
		{"package gpgcheck off", Repo{Source: "https://x", PackageGPGCheck: boolp(false)}, "https://x,,,,,false"},
		{"signing keys", Repo{Source: "https://x", SigningKeys: []string{"file:///a.gpg", "file:///b.gpg"}}, "https://x,,,,,,{file:///a.gpg;file:///b.gpg}"},
		{
			"debian with everything",
			Repo{
				Source: "http://deb.debian.org/debian", Type: "apt-deb", Alias: "bookworm", Priority: 1,
				ImageInclude: true, PackageGPGCheck: boolp(true), SigningKeys: []string{"file:///k.gpg"},
				Components: []string{"main", "contrib"}, Distribution: "bookworm", RepoGPGCheck: boolp(false),
			},
			"http://deb.debian.org/debian,apt-deb,bookworm,1,true,true,{file:///k.gpg},main contrib,bookworm,false",
		},
		{"repo gpgcheck only", Repo{Source: "https://x", RepoGPGCheck: boolp(true)}, "https://x,,,,,,,,,true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.repo.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got := tt.repo.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if n := strings.Count(tt.repo.String(), ","); n > 9 {
				t.Errorf("%d commas; KIWI splits into at most 10 fields", n)
			}
		})
	}
}

func TestRepoValidateRejectsWhatTheCommaFormatCannotCarry(t *testing.T) {
	tests := []struct {
		name string
		repo Repo
		want string
	}{
		{"empty source", Repo{}, "source is empty"},
		{"comma in source", Repo{Source: "https://x/a,b"}, "source"},
		{"brace in alias", Repo{Source: "https://x", Alias: "{a}"}, "alias"},
		{"space around type", Repo{Source: "https://x", Type: " rpm-md"}, "type"},
		{"negative priority", Repo{Source: "https://x", Priority: -1}, "negative"},
		{"semicolon in key", Repo{Source: "https://x", SigningKeys: []string{"a;b"}}, "signing key"},
		{"space in component", Repo{Source: "https://x", Components: []string{"main contrib"}}, "component"},
		{"empty component", Repo{Source: "https://x", Components: []string{""}}, "component"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.repo.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestArgsPutGlobalOptionsBeforeSystemBuild(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{
			"minimal",
			Options{Description: "/d", TargetDir: "/t"},
			[]string{"system", "build", "--description=/d", "--target-dir=/t"},
		},
		{
			"profiles type arch",
			Options{Description: "/d", TargetDir: "/t", Profiles: []string{"vm-gen1", "LegacyBoot"}, Type: "oem", TargetArch: "x86_64"},
			[]string{"--profile=vm-gen1", "--profile=LegacyBoot", "--type=oem", "--target-arch=x86_64",
				"system", "build", "--description=/d", "--target-dir=/t"},
		},
		{
			"logging config and extra global args",
			Options{Description: "d", TargetDir: "t", KiwiFile: "vm.kiwi", LogFile: "/o/kiwi.log", LogLevel: 10, Config: "/o/kiwi.yml",
				GlobalArgs: []string{"--debug", "--shared-cache-dir=/c"}},
			[]string{"--kiwi-file=vm.kiwi", "--logfile=/o/kiwi.log", "--loglevel=10", "--config=/o/kiwi.yml", "--debug", "--shared-cache-dir=/c",
				"system", "build", "--description=d", "--target-dir=t"},
		},
		{
			"build options in order",
			Options{
				Description: "/d", TargetDir: "/t", IgnoreRepos: true,
				SetRepo:     &Repo{Source: "http://mirror/debian"},
				AddRepos:    []Repo{{Source: "https://a", Type: "rpm-md", Alias: "a", Priority: 10}, {Source: "dir:///local", Type: "rpm-dir"}},
				AddPackages: []string{"openssh-server", "dbus"},
				BuildArgs:   []string{"--allow-existing-root", "--set-type-attr=format=qcow2"},
			},
			[]string{"system", "build", "--description=/d", "--target-dir=/t", "--ignore-repos",
				"--set-repo=http://mirror/debian",
				"--add-repo=https://a,rpm-md,a,10", "--add-repo=dir:///local,rpm-dir",
				"--add-package=openssh-server", "--add-package=dbus",
				"--allow-existing-root", "--set-type-attr=format=qcow2"},
		},
		{
			"value starting with a dash stays attached",
			Options{Description: "-d", TargetDir: "-t", Profiles: []string{"-p"}},
			[]string{"--profile=-p", "system", "build", "--description=-d", "--target-dir=-t"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.opts.Args()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Args()\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestArgsRejectBadOptions(t *testing.T) {
	base := Options{Description: "/d", TargetDir: "/t"}
	tests := []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"no description", func(o *Options) { o.Description = "" }, "description"},
		{"no target", func(o *Options) { o.TargetDir = "" }, "target"},
		{"empty profile", func(o *Options) { o.Profiles = []string{""} }, "profile"},
		{"profile with space", func(o *Options) { o.Profiles = []string{"a b"} }, "profile"},
		{"negative log level", func(o *Options) { o.LogLevel = -1 }, "log level"},
		{"bad set-repo", func(o *Options) { o.SetRepo = &Repo{Source: "a,b"} }, "set-repo"},
		{"bad add-repo", func(o *Options) { o.AddRepos = []Repo{{Source: "ok"}, {}} }, "add-repo #2"},
		{"package with space", func(o *Options) { o.AddPackages = []string{"a b"} }, "package"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.mod(&o)
			_, err := o.Args()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Args() error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
