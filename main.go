package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/plugin"

	"github.com/osimage/packer-plugin-osimage/builder/disk"
	"github.com/osimage/packer-plugin-osimage/builder/releasemanifest"
	"github.com/osimage/packer-plugin-osimage/builder/state"
	"github.com/osimage/packer-plugin-osimage/datasource/matrix"
	gallerypp "github.com/osimage/packer-plugin-osimage/post-processor/gallery"
	ocipp "github.com/osimage/packer-plugin-osimage/post-processor/oci"
	vhdpp "github.com/osimage/packer-plugin-osimage/post-processor/vhd"
	"github.com/osimage/packer-plugin-osimage/version"
)

func main() {
	pps := plugin.NewSet()
	pps.RegisterBuilder("disk", new(disk.Builder))
	pps.RegisterBuilder("state", new(state.Builder))
	pps.RegisterBuilder("release", new(releasemanifest.Builder))
	pps.RegisterDatasource("matrix", new(matrix.Datasource))
	pps.RegisterPostProcessor("vhd", new(vhdpp.PostProcessor))
	pps.RegisterPostProcessor("gallery", new(gallerypp.PostProcessor))
	pps.RegisterPostProcessor("oci", new(ocipp.PostProcessor))
	pps.SetVersion(version.PluginVersion)
	if err := pps.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(1)
	}
}
