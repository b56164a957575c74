package pgds_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/reservations"
)

// In shared mode every change is one transaction: one commit each, timed,
// and counted in repo.Stats as in the single-process path.
func TestShared_StatsCountCommits(t *testing.T) {
	_, url := openDS(t)
	s, r := sharedStore(t, url)
	before := r.Stats()
	for range 3 {
		_, err := s.AddAvailability(t.Context(), reservations.Availability{TotalSize: 10, Duration: 1})
		require.NoError(t, err)
	}
	_, err := s.Availabilities(t.Context()) // reads commit nothing
	require.NoError(t, err)
	after := r.Stats()
	assert.Equal(t, before.Commits+3, after.Commits)
	assert.Equal(t, before.Changes+3, after.Changes)
	assert.Equal(t, before.GroupSize.Sum+3, after.GroupSize.Sum, "one change per transaction")
	assert.Equal(t, before.CommitSeconds.Count+3, after.CommitSeconds.Count)
	assert.Zero(t, after.WriteFailures)
}
