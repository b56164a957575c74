package pgds_test

import (
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/pgds/internal/pgtest"
)

// The server settings the package doc recommends for a dead network are
// taken from the connection string, as pgds.Open passes it to pgxpool.
func TestOpen_ServerTimeoutsFromConnectionString(t *testing.T) {
	u, err := url.Parse(pgtest.URL(t))
	require.NoError(t, err)
	want := map[string]string{
		"statement_timeout":                   "5s",
		"idle_in_transaction_session_timeout": "10s",
		"tcp_user_timeout":                    "10000",
		"tcp_keepalives_idle":                 "10",
		"tcp_keepalives_interval":             "5",
		"tcp_keepalives_count":                "3",
	}
	q := u.Query()
	q.Set("statement_timeout", "5000")
	q.Set("idle_in_transaction_session_timeout", "10000")
	q.Set("tcp_user_timeout", "10000")
	q.Set("tcp_keepalives_idle", "10")
	q.Set("tcp_keepalives_interval", "5")
	q.Set("tcp_keepalives_count", "3")
	u.RawQuery = q.Encode()
	pool, err := pgxpool.New(t.Context(), u.String())
	require.NoError(t, err)
	defer pool.Close()
	for name, value := range want {
		var got string
		require.NoError(t, pool.QueryRow(t.Context(), "SELECT current_setting($1)", name).Scan(&got))
		assert.Equal(t, value, got, name)
	}
}
