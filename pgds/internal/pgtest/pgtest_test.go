package pgtest_test

import (
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/pgds/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestURL_GivesEachCallAFreshDatabase(t *testing.T) {
	a, b := pgtest.URL(t), pgtest.URL(t)
	require.NotEqual(t, a, b)

	ca, err := pgx.Connect(t.Context(), a)
	require.NoError(t, err)
	defer ca.Close(t.Context())
	_, err = ca.Exec(t.Context(), "CREATE TABLE x (i int)")
	require.NoError(t, err)

	cb, err := pgx.Connect(t.Context(), b)
	require.NoError(t, err)
	defer cb.Close(t.Context())
	var n int
	require.NoError(t, cb.QueryRow(t.Context(), "SELECT count(*) FROM pg_tables WHERE tablename = 'x'").Scan(&n))
	assert.Zero(t, n, "a table of one test's database is visible in another's")
}

func TestURL_PrivateServerListensOnLoopbackOnly(t *testing.T) {
	if os.Getenv(pgtest.EnvURL) != "" {
		t.Skip("an external server is configured")
	}
	conn, err := pgx.Connect(t.Context(), pgtest.URL(t))
	require.NoError(t, err)
	defer conn.Close(t.Context())
	for setting, want := range map[string]string{"listen_addresses": "127.0.0.1", "fsync": "off"} {
		var got string
		require.NoError(t, conn.QueryRow(t.Context(), "SELECT current_setting($1)", setting).Scan(&got))
		assert.Equal(t, want, got, setting)
	}
}
