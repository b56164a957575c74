package engine

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func put(key, value string) op { return op{okey: okey{key: key}, value: []byte(value)} }
func del(key string) op        { return op{okey: okey{key: key}, del: true} }
func block(key, value string) op {
	return op{okey: okey{blocks: true, key: key}, value: []byte(value)}
}

// The last write of a key wins; the sorted keys hold the metadata keys
// only, each once.
func TestOverlay_AddGetKeys(t *testing.T) {
	ov := newOverlay()
	ov.add([]op{put("/b", "1"), put("/a", "1"), block("/a", "blk")}, 1)
	ov.add([]op{del("/b"), put("/c", "2")}, 2)

	p, ok := ov.get(okey{key: "/b"})
	require.True(t, ok)
	assert.True(t, p.del)
	assert.Equal(t, uint64(2), p.seq)
	p, ok = ov.get(okey{blocks: true, key: "/a"})
	require.True(t, ok)
	assert.Equal(t, "blk", string(p.value))
	_, ok = ov.get(okey{key: "/d"})
	assert.False(t, ok)
	assert.Equal(t, []string{"/a", "/b", "/c"}, ov.keys)
	assert.Equal(t, []string{"/b", "/c"}, ov.from("/b"))
	assert.Equal(t, []string{"/c"}, ov.from("/bb"))
	assert.Empty(t, ov.from("/d"))
}

// A durable group's writes stay one group (so a caller's next change reads
// them from memory), then go; a key a later change wrote again stays; an
// idle engine's overlay is empty.
func TestOverlay_RetireOneGroupLate(t *testing.T) {
	ov := newOverlay()
	c1 := &change{ops: []op{put("/a", "1"), put("/b", "1"), block("/x", "x")}, seq: 1}
	c2 := &change{ops: []op{put("/b", "2")}, seq: 2}
	c3 := &change{ops: []op{put("/c", "3")}, seq: 3}
	for _, c := range []*change{c1, c2, c3} {
		ov.add(c.ops, c.seq)
	}

	ov.retire([][]*change{{c1}}, false)
	_, ok := ov.get(okey{key: "/a"})
	assert.True(t, ok, "the last durable group's writes stay")

	ov.retire([][]*change{{c2}}, false)
	_, ok = ov.get(okey{key: "/a"})
	assert.False(t, ok, "two groups late, they go")
	_, ok = ov.get(okey{blocks: true, key: "/x"})
	assert.False(t, ok)
	p, ok := ov.get(okey{key: "/b"})
	require.True(t, ok, "/b was written again by c2, not yet retired")
	assert.Equal(t, "2", string(p.value))
	assert.Equal(t, []string{"/b", "/c"}, ov.keys)

	ov.retire([][]*change{{c3}}, true)
	assert.Empty(t, ov.m)
	assert.Empty(t, ov.keys)
	assert.Empty(t, ov.retired)
}

func TestOverlay_Reset(t *testing.T) {
	ov := newOverlay()
	c := &change{ops: []op{put("/a", "1")}, seq: 1}
	ov.add(c.ops, c.seq)
	ov.retire([][]*change{{c}}, false)
	ov.add([]op{put("/b", "1")}, 2)
	ov.reset()
	assert.Empty(t, ov.m)
	assert.Empty(t, ov.keys)
	assert.Empty(t, ov.retired)
	ov.add([]op{put("/c", "1")}, 3)
	assert.Equal(t, []string{"/c"}, ov.keys)
}
