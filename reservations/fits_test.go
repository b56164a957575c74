package reservations

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/holiman/uint256"
)

// fits is the allocation-free form of failures: they must always agree.
func TestNeedFits_AgreesWithFailures(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	small := func() uint64 { return rng.Uint64N(4) }
	when := func() time.Time {
		if rng.IntN(3) == 0 {
			return time.Time{}
		}
		return time.Unix(int64(rng.IntN(4)), 0)
	}
	for i := range 20000 {
		n := need{
			size: small(), duration: small(), price: *uint256.NewInt(small()), coll: *uint256.NewInt(small()),
			until: when(),
		}
		a := Availability{
			Size: small(), Duration: small(), MinPrice: *uint256.NewInt(small()), MaxCollateral: *uint256.NewInt(small()),
			Disabled: rng.IntN(3) == 0, Until: when(), TotalCollateral: *uint256.NewInt(small()), FreeCollateral: *uint256.NewInt(small()),
		}
		if got, want := n.fits(&a), len(n.failures(&a)) == 0; got != want {
			t.Fatalf("case %d: fits = %v, failures = %v\nneed %+v\navailability %+v", i, got, n.failures(&a), n, a)
		}
	}
}
