//go:build !amd64

package sandbox

// x32Supported: x32 is an amd64 ABI; elsewhere no filter names it.
func x32Supported() bool { return false }
