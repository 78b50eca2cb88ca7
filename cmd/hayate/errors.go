package main

import "errors"

// errUsage is a command line that names no command: the usage is printed
// and the exit status is 2.
var errUsage = errors.New("usage")
