// Package oddkeys is the one table of block keys the SDK must refuse with
// repo.ErrInvalidKey, shared by the keys tests of repo and reservations.
package oddkeys

import (
	"strings"

	"github.com/ipfs/go-datastore"
)

// Block returns block keys that are empty, the root, or would not map to a
// proper child of the block prefix, by name. (RawKey("//") and
// RawKey("/a/") panic in go-datastore itself, before any call of ours.)
func Block() map[string]datastore.Key {
	return map[string]datastore.Key{
		"zero Key{}":          {},
		`NewKey("")`:          datastore.NewKey(""),
		`NewKey("/")`:         datastore.NewKey("/"),
		`RawKey("")`:          datastore.RawKey(""),
		`RawKey("//a")`:       datastore.RawKey("//a"),
		`RawKey("/a//b")`:     datastore.RawKey("/a//b"),
		`RawKey("/.")`:        datastore.RawKey("/."),
		`RawKey("/..")`:       datastore.RawKey("/.."),
		`RawKey("/a/..")`:     datastore.RawKey("/a/.."),
		`RawKey("/../a")`:     datastore.RawKey("/../a"),
		`RawKey("/a/./b")`:    datastore.RawKey("/a/./b"),
		"very long":           datastore.NewKey(strings.Repeat("k", 4096)),
		"NUL byte":            datastore.RawKey("/a\x00b"),
		"only NUL":            datastore.NewKey("\x00"),
		"invalid UTF-8":       datastore.RawKey("/\xff\xfe"),
		"prefix then ..":      datastore.RawKey("/blocks/.."),
		"up out of a prefix":  datastore.RawKey("/a/../../meta/quota/used"),
		"up out of the index": datastore.RawKey("/../../byid/x"),
	}
}
