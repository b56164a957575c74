package httpapi

import (
	"net/http"
)

// queueJSON is the slot queue: its counters and the items waiting, best
// first.
type queueJSON struct {
	Stats queueStatsJSON `json:"stats"`
	Items []itemJSON     `json:"items"`
}

type queueStatsJSON struct {
	Waiting   int    `json:"waiting"`
	Busy      int    `json:"busy"`
	Capacity  int    `json:"capacity"`
	Paused    bool   `json:"paused"`
	Pushed    uint64 `json:"pushed"`
	Processed uint64 `json:"processed"`
	Failed    uint64 `json:"failed"`
	Requeued  uint64 `json:"requeued"`
	Evicted   uint64 `json:"evicted"`
	Expired   uint64 `json:"expired"`
}

type itemJSON struct {
	RequestID  string `json:"requestId"`
	SlotIndex  uint64 `json:"slotIndex"`
	SlotSize   uint64 `json:"slotSize"`
	Duration   uint64 `json:"duration"`
	Reward     string `json:"reward"`
	Collateral string `json:"collateral"`
	Expiry     int64  `json:"expiry"`
	Seen       bool   `json:"seen"`
}

func (h *handler) queueState(w http.ResponseWriter, _ *http.Request) {
	q := h.queue
	s := q.Stats()
	items := q.Items()
	out := queueJSON{
		Stats: queueStatsJSON{
			Waiting: s.Waiting, Busy: s.Busy, Capacity: q.Cap(), Paused: q.Paused(),
			Pushed: s.Pushed, Processed: s.Processed, Failed: s.Failed,
			Requeued: s.Requeued, Evicted: s.Evicted, Expired: s.Expired,
		},
		Items: make([]itemJSON, len(items)),
	}
	for i, it := range items {
		out.Items[i] = itemJSON{
			RequestID:  it.RequestID.String(),
			SlotIndex:  it.Index,
			SlotSize:   it.Ask.SlotSize,
			Duration:   it.Ask.Duration,
			Reward:     it.Ask.Reward.Dec(),
			Collateral: it.Ask.Collateral.Dec(),
			Expiry:     unixOrZero(it.Expiry),
			Seen:       it.Seen,
		}
	}
	writeJSON(w, http.StatusOK, out)
}
