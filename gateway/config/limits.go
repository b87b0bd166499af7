package config

// Limits of the package, in one place.
const (
	// MaxBody bounds a PUT body (the reference configuration service's
	// 256 KB cap).
	MaxBody = 256 << 10
	// MaxNameLen bounds a document name.
	MaxNameLen = 64
	// MaxVersionsPage bounds one page of GET .../versions.
	MaxVersionsPage = 1000
	// DefaultVersionsPage is the page size when ?limit is absent.
	DefaultVersionsPage = 100
	// MaxVersions bounds the stored versions of one document; a Put beyond
	// it is refused ([ErrFull] from stores).
	MaxVersions = 100_000
	// maxFileSize bounds the versions file read by OpenFile.
	maxFileSize = 1 << 30
)
