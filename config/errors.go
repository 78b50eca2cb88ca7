package config

import "errors"

// Sentinel errors of configuration parsing.
var (
	// ErrUnknownKey is a key that Hayate does not have.
	ErrUnknownKey = errors.New("unknown key")
	// ErrSyntax is a line or value that does not parse.
	ErrSyntax = errors.New("syntax error")
	// ErrOutOfRange is a value that parses but is not allowed.
	ErrOutOfRange = errors.New("value out of range")
	// ErrBadURL is a webhook URL that is not an absolute http(s) URL.
	ErrBadURL = errors.New("not an absolute http or https URL")
	// ErrInsecure is a cluster that would listen beyond loopback without
	// credentials, or credentials given only in part.
	ErrInsecure = errors.New("cluster credentials required")
)
