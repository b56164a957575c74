// Package apicheck holds no code: its test file spells out every name and
// signature of the public API contract (shared/API.md) as typed values, so
// that a change to the contract fails the build of the tests instead of
// reaching the programs that import stowage.
package apicheck
