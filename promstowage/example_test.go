package promstowage_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stowage/stowage/promstowage"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// Register the collector and serve /metrics.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "promstowage")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	r, err := repo.Open(ctx, dir, repo.WithQuotaMaxBytes(1<<30))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	store := reservations.New(r)
	if _, err := store.AddAvailability(ctx, reservations.Availability{TotalSize: 1 << 20, Duration: 3600}); err != nil {
		log.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(promstowage.New(r, store)) // promstowage.WithQueue(q) adds the queue's
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "stowage_quota_") || strings.HasPrefix(line, "stowage_availabilit") {
			fmt.Println(line)
		}
	}
	// Output:
	// stowage_availabilities 1
	// stowage_availability_free_bytes 1.048576e+06
	// stowage_availability_held_bytes 0
	// stowage_availability_offered_bytes 1.048576e+06
	// stowage_quota_max_bytes 1.073741824e+09
	// stowage_quota_reserved_bytes 1.048576e+06
	// stowage_quota_used_bytes 0
}
