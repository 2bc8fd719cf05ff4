// Package version holds the plugin's version, reported by `describe` and used
// in the names of installed and released binaries.
package version

import "github.com/hashicorp/packer-plugin-sdk/version"

var (
	// Version is the main version number of the plugin.
	Version = "0.1.0"
	// VersionPrerelease is a pre-release marker such as "dev"; empty for a release.
	// `make dev` sets it to "dev" with -ldflags.
	VersionPrerelease = "dev"
	// VersionMetadata is optional build metadata; release binaries leave it empty.
	VersionMetadata = ""
	// PluginVersion is what the plugin set reports.
	PluginVersion = version.NewPluginVersion(Version, VersionPrerelease, VersionMetadata)
)
