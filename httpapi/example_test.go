package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"

	"github.com/stowage/stowage/httpapi"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

var uuid = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f-]{27}`)

// Mount the API under /api/stowage/v1 beside the host's other handlers.
// A real host listens on 127.0.0.1 (or sets WithToken) instead of using
// httptest.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "stowage-httpapi")
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

	mux := http.NewServeMux()
	mux.Handle("/api/stowage/v1/", http.StripPrefix("/api/stowage/v1", httpapi.New(store, r)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	call := func(method, path, body string) {
		req, err := http.NewRequest(method, srv.URL+"/api/stowage/v1"+path, strings.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		// IDs differ from run to run.
		fmt.Println(resp.StatusCode, uuid.ReplaceAllString(strings.TrimSpace(string(b)), "…"))
	}
	call("POST", "/sales/availability", `{"totalSize": 1073741824, "duration": 86400, "minPrice": "1000"}`)
	call("GET", "/space", "")
	call("POST", "/sales/availability", `{"totalSize": 1, "duration": 86400}`)
	// Output:
	// 201 {"id":"…","totalSize":1073741824,"freeSize":1073741824,"duration":86400,"minPrice":"1000","maxCollateral":"0","totalCollateral":"0","totalRemainingCollateral":"0","enabled":true,"until":0}
	// 200 {"quotaMaxBytes":1073741824,"quotaUsedBytes":0,"quotaReservedBytes":1073741824,"quotaAvailableBytes":0,"totalBlocks":0}
	// 422 {"error":"add availability of 1 bytes: repo: not enough quota: reserve 1 bytes, available 0 (max 1073741824, used 0, reserved 1073741824)"}
}
