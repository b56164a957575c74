package repo_test

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/internal/faultfs"
	"github.com/stowage/stowage/repo"
)

// fakeClock is the clock that spaces a repo's retries of a failed reopen.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// assertNoSpace checks that err is a refused write that names its cause.
func assertNoSpace(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, repo.ErrWriteFailed)
	assert.ErrorIs(t, err, syscall.ENOSPC)
	assert.Contains(t, err.Error(), "no space left on device")
}

// diskFullRepo is one variant of a full disk under a repo from Open.
type diskFullRepo struct {
	dir  string
	opts []repo.Option
	// fill writes blocks until the disk is full, recording those
	// acknowledged, and returns the error of the write that found it full.
	fill func(r *repo.Repo, acked map[datastore.Key][]byte) error
	free func() // gives space back
}

func block(t *testing.T, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b) // incompressible, as a real block
	require.NoError(t, err)
	return b
}

// A full disk: the write that finds it fails with ErrWriteFailed naming
// ENOSPC; the repo reopens its database, which needs room it does not
// have, so it answers reads from the database opened read-only, and every
// later write is refused with an error saying that the reopen failed and
// why. Once there is space again, the next write after a second retries
// the reopen and goes on: no restart. Every acknowledged block survives a
// restart and the books balance.
func TestOpen_DiskFull(t *testing.T) {
	variants := map[string]func(t *testing.T) diskFullRepo{
		"faultfs": func(t *testing.T) diskFullRepo {
			f := &faultfs.Faults{}
			return diskFullRepo{
				dir:  t.TempDir(),
				opts: []repo.Option{repo.WithStorageForTest(f.Wrap)},
				fill: func(r *repo.Repo, acked map[datastore.Key][]byte) error {
					f.SetFull(true)
					return r.PutBlock(t.Context(), datastore.NewKey("full"), block(t, 1000))
				},
				free: func() { f.SetFull(false) },
			}
		},
		"tmpfs": func(t *testing.T) diskFullRepo {
			if os.Geteuid() != 0 {
				t.Skip("mounting a tmpfs needs root (CI runs as root)")
			}
			mnt := t.TempDir()
			out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", mnt).CombinedOutput()
			require.NoError(t, err, "mount: %s", out)
			t.Cleanup(func() {
				if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
					t.Errorf("umount %s: %v: %s", mnt, err, out)
				}
			})
			// Ballast: freeing it gives the database room to replay its
			// journal (a table as large as the journal, up to 4 MiB).
			ballast := filepath.Join(mnt, "ballast")
			require.NoError(t, os.WriteFile(ballast, make([]byte, 6<<20), 0o600))
			return diskFullRepo{
				dir: filepath.Join(mnt, "db"),
				fill: func(r *repo.Repo, acked map[datastore.Key][]byte) error {
					for i := 0; ; i++ {
						require.Less(t, i, 1000, "12 MiB never filled")
						k := datastore.NewKey(fmt.Sprintf("fill/%d", i))
						b := block(t, 64<<10)
						if err := r.PutBlock(t.Context(), k, b); err != nil {
							return err
						}
						acked[k] = b
					}
				},
				free: func() { require.NoError(t, os.Remove(ballast)) },
			}
		},
	}
	for name, mk := range variants {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			v := mk(t)
			clock := &fakeClock{now: time.Unix(1e9, 0)}
			opts := append([]repo.Option{repo.WithNoSync(), repo.WithClockForTest(clock.Now)}, v.opts...)
			r, err := repo.Open(ctx, v.dir, opts...)
			require.NoError(t, err)
			t.Cleanup(func() { _ = r.Close() })

			acked := map[datastore.Key][]byte{}
			for i := range 20 {
				k := datastore.NewKey(fmt.Sprintf("before/%d", i))
				acked[k] = block(t, 1000)
				require.NoError(t, r.PutBlock(ctx, k, acked[k]))
			}
			require.NoError(t, r.Reserve(ctx, 100))

			// The write that found the disk full says that the reopen
			// failed too, not that the repo goes on.
			err = v.fill(r, acked)
			assertNoSpace(t, err)
			assert.Contains(t, err.Error(), "outcome unknown")
			assert.Contains(t, err.Error(), "reopening the database failed")
			assert.NotContains(t, err.Error(), "goes on")
			t.Logf("the write that found the disk full: %v", err)

			// Reads go on, and so does Verify.
			reads := func() {
				t.Helper()
				for k, want := range acked {
					got, err := r.GetBlock(ctx, k)
					if assert.NoError(t, err, "block %s", k) {
						assert.Equal(t, want, got, "block %s", k)
					}
				}
				assert.NoError(t, r.Verify(ctx))
				assert.Equal(t, uint64(100), r.Quota().Reserved)
			}
			reads()

			// Writes are refused, naming the cause; a retry within the
			// second is not made, one after it fails the same way.
			assertNoSpace(t, r.Reserve(ctx, 1))
			clock.Advance(time.Second)
			err = r.Reserve(ctx, 1)
			assertNoSpace(t, err)
			assert.Contains(t, err.Error(), "reopening the database failed")
			t.Logf("a write after the failed reopen: %v", err)
			reads()

			// Space comes back: the next write after a second reopens
			// the database and goes on, without a restart.
			v.free()
			assert.ErrorIs(t, r.Reserve(ctx, 1), repo.ErrWriteFailed, "no retry within a second of the last")
			clock.Advance(time.Second)
			require.NoError(t, r.Reserve(ctx, 1))
			for i := range 5 {
				k := datastore.NewKey(fmt.Sprintf("after/%d", i))
				acked[k] = block(t, 1000)
				require.NoError(t, r.PutBlock(ctx, k, acked[k]))
			}
			require.NoError(t, r.Verify(ctx))
			require.NoError(t, r.Close())

			// Every acknowledged block survives a restart.
			again, err := repo.Open(ctx, v.dir, repo.WithNoSync())
			require.NoError(t, err)
			defer again.Close()
			for k, want := range acked {
				got, err := again.GetBlock(ctx, k)
				if assert.NoError(t, err, "block %s", k) {
					assert.Equal(t, want, got, "block %s", k)
				}
			}
			assert.Equal(t, uint64(101), again.Quota().Reserved)
			assert.NoError(t, again.Verify(ctx))
		})
	}
}
