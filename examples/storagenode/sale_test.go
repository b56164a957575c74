package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/stowage/stowage/examples/storagenode/market"
)

func TestSaleEvents_Table(t *testing.T) {
	states := []saleState{&downloading{}, &initialProving{}, &filling{}, &filled{}, &proving{}, &payout{},
		&finished{}, &cancelled{}, &failed{}, &errored{}, &ignored{}}
	// want[event][state]: the name of the next state, "" for no move.
	want := map[string]map[string]string{
		"cancelled": {"downloading": "cancelled", "initial-proving": "cancelled", "filling": "cancelled", "filled": "cancelled", "proving": "cancelled"},
		"failed": {"downloading": "failed", "initial-proving": "failed", "filling": "failed", "filled": "failed",
			"proving": "failed", "payout": "failed"},
		"finished":        {"filled": "payout", "proving": "payout"},
		"filled-by-other": {"downloading": "ignored", "initial-proving": "ignored", "filling": "ignored"},
		"slot-lost":       {"filled": "errored", "proving": "errored"},
	}
	events := map[string]saleEvent{"cancelled": onCancelled, "failed": onFailed, "finished": onFinished,
		"filled-by-other": onFilledByOther, "slot-lost": onSlotLost}
	for name, ev := range events {
		for _, st := range states {
			got := ""
			if next := ev(st); next != nil {
				got = fmt.Sprint(next)
			}
			assert.Equal(t, want[name][fmt.Sprint(st)], got, "%s in %s", name, st)
		}
	}
	lost := onSlotLost(&proving{}).(*errored)
	assert.True(t, errors.Is(lost.err, ErrSlotLost))
	assert.Equal(t, "proving", lost.in)
	assert.Equal(t, reasonLostRace, onFilledByOther(&filling{}).(*ignored).reason)
}

func TestResumeState_Table(t *testing.T) {
	for _, c := range []struct {
		st   market.SlotStatus
		err  error
		want string
	}{
		{market.SlotStatus{Request: market.RequestStarted, Mine: true}, nil, "proving"},
		{market.SlotStatus{Request: market.RequestNew, Mine: true}, nil, "proving"},
		{market.SlotStatus{Request: market.RequestFinished, Mine: true}, nil, "payout"},
		{market.SlotStatus{Request: market.RequestFinished, Mine: true, Paid: true}, nil, ""},
		{market.SlotStatus{Request: market.RequestCancelled, Mine: true}, nil, "cancelled"},
		{market.SlotStatus{Request: market.RequestFailed, Mine: true}, nil, "failed"},
		{market.SlotStatus{Request: market.RequestNew, Free: true}, nil, ""},
		{market.SlotStatus{Request: market.RequestStarted}, nil, ""},
		{market.SlotStatus{}, market.ErrUnknownRequest, ""},
	} {
		got := ""
		if next := resumeState(c.st, c.err); next != nil {
			got = fmt.Sprint(next)
		}
		assert.Equal(t, c.want, got, "%+v %v", c.st, c.err)
	}
}
