// Package apicheck holds no code: its test file is the v1 public API
// contract, every exported name and signature that programs importing
// stowage compile against, spelled out as typed values. A change that
// renames, removes or retypes one of them fails to build the test, so it
// cannot reach those programs unnoticed (CHANGELOG.md: from v1.0.0 the API
// only grows). Adding a name is adding a line here.
package apicheck
