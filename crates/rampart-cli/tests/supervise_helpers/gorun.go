// Test helper for `rampart supervise`: Go's os/exec forks and execs with raw syscalls,
// which the preload library never sees. Runs its arguments as one command, passing
// stdio through, and exits with the command's status (77 when starting it failed
// with EPERM, 79 for any other start error).
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

func main() {
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		os.Exit(0)
	case errors.As(err, &exit):
		os.Exit(exit.ExitCode())
	case errors.Is(err, syscall.EPERM):
		fmt.Fprintln(os.Stderr, "gorun:", err)
		os.Exit(77)
	default:
		fmt.Fprintln(os.Stderr, "gorun:", err)
		os.Exit(79)
	}
}
