package fs

// System calls package syscall does not name on this architecture.
const (
	sysSyncfs    = 306
	sysRenameat2 = 316
)
