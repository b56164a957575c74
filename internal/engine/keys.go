package engine

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/ipfs/go-datastore"
)

// ErrInvalidKey means a block key that is empty, the root, or would not map
// to a proper child of the block prefix.
var ErrInvalidKey = errors.New("repo: invalid key")

// MaxKeyLen is the longest block key, in bytes of its string form, that
// CheckBlockKey accepts: every datastore the repo runs on (PostgreSQL's
// indexes included) holds it with the prefixes the SDK adds.
const MaxKeyLen = 1024

// CheckBlockKey returns an error matching ErrInvalidKey unless key is a
// proper key below the block prefix: not the zero Key nor the root, in its
// clean form (a leading "/", no empty, "." or ".." segment, no trailing
// "/"), valid UTF-8 without NUL, and at most MaxKeyLen bytes long. Such a
// key maps to one place under the block prefix and nowhere else, on every
// datastore.
func CheckBlockKey(key datastore.Key) error {
	s := key.String()
	var why string
	switch {
	case s == "":
		why = "the zero key"
	case s == "/":
		why = "the root key"
	case len(s) > MaxKeyLen:
		why = fmt.Sprintf("%d bytes long, above %d", len(s), MaxKeyLen)
	case path.Clean(s) != s:
		why = "not in its clean form (empty, \".\" or \"..\" segments, or a trailing \"/\")"
	case strings.IndexByte(s, 0) >= 0:
		why = "it holds a NUL byte"
	case !utf8.ValidString(s):
		why = "not valid UTF-8"
	default:
		return nil
	}
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return fmt.Errorf("%w %q: %s", ErrInvalidKey, s, why)
}
