package owner_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/stowage/stowage/internal/owner"
)

func TestToken(t *testing.T) {
	var zero owner.Token
	assert.False(t, zero.Valid())
	assert.False(t, zero.Owns("/meta/sales/x"), "the zero Token grants nothing")
	assert.Equal(t, "none", zero.Name())

	r := owner.Reservations
	assert.True(t, r.Valid())
	assert.True(t, r.Owns("/meta/sales/layout"))
	assert.False(t, r.Owns("/meta/sales"), "the prefix itself is no record")
	assert.False(t, r.Owns("/meta/salesman/x"))
	assert.False(t, r.Owns("/meta/quota/used"))
	assert.False(t, r.Owns("/blocks/x"))
	assert.Equal(t, r.ID(), owner.Reservations.ID())
	assert.NotEqual(t, r.ID(), zero.ID())
}
