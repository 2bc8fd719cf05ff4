package imagedef

// The spellings of the built-in dimensions live in internal/variant's one
// table; these names bind the matrix code to it.

import "github.com/osimage/packer-plugin-osimage/internal/variant"

// Names of the built-in dimensions.
const (
	DimArch             = variant.DimArch
	DimPlatform         = variant.DimPlatform
	DimHyperVGeneration = variant.DimHyperVGeneration
	DimFirmware         = variant.DimFirmware
)

// Indexes into builtinDims.
const (
	bArch       = variant.IArch
	bPlatform   = variant.IPlatform
	bGeneration = variant.IGeneration
	bFirmware   = variant.IFirmware
	numBuiltins = variant.NumBuiltins
)

var (
	builtinDims          = &variant.Dims
	builtinByName        = variant.DimByName
	builtinByVariantsKey = variant.DimByVariantsKey
)
