package fs

// System calls package syscall does not name on this architecture.
const (
	sysSyncfs    = 267
	sysRenameat2 = 276
)
