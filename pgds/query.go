package pgds

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/ipfs/go-datastore/query"
)

// pageSize is how many rows one statement of a query reads.
const pageSize = 1000

var sqlOps = map[query.Op]string{
	query.Equal:              "=",
	query.NotEqual:           "<>",
	query.GreaterThan:        ">",
	query.GreaterThanOrEqual: ">=",
	query.LessThan:           "<",
	query.LessThanOrEqual:    "<=",
}

// plan is a query.Query split into what the server does and what is left
// to query.NaiveQueryApply.
type plan struct {
	where []string // ANDed conditions
	args  []any
	desc  bool // key order descending

	withValues, withSizes bool

	// The rest runs in Go, in this order, after the server's part.
	naiveFilters []query.Filter
	naiveOrders  []query.Order
	offset       int // pushed into the first page when nothing runs in Go
	limit        int
	pushedLimits bool
}

func (p *plan) arg(v any) string {
	p.args = append(p.args, v)
	return "$" + strconv.Itoa(len(p.args))
}

// keyRange adds lo <= key < hi; hi == "" is no upper bound.
func (p *plan) keyRange(lo, hi string) {
	p.where = append(p.where, "key >= "+p.arg(lo))
	if hi != "" {
		p.where = append(p.where, "key < "+p.arg(hi))
	}
}

// prefixEnd returns the least string above every string with prefix s, when
// it is text PostgreSQL can compare.
func prefixEnd(s string) (string, bool) {
	if s == "" || !isText(s) || s[len(s)-1] >= 0x7f {
		return "", false
	}
	return s[:len(s)-1] + string(s[len(s)-1]+1), true
}

func newPlan(q query.Query) (*plan, error) {
	p := &plan{}
	if q.Prefix != "" {
		// As query.NaiveQueryApply: "/a" selects the children "/a/..."
		// only, and the prefix is cleaned as a key.
		prefix := path.Clean("/" + q.Prefix)
		if prefix != "/" {
			prefix += "/"
			if !isText(prefix) {
				return nil, fmt.Errorf("pgds: query prefix %q: %w", q.Prefix, ErrInvalidKey)
			}
			end, _ := prefixEnd(prefix) // ends in '/': always has an end
			p.keyRange(prefix, end)
		}
	}
	for _, f := range q.Filters {
		if !p.pushFilter(f) {
			p.naiveFilters = append(p.naiveFilters, f)
		}
	}
	switch {
	case len(q.Orders) == 0:
	case isKeyOrder(q.Orders[0], false):
		// Keys are unique: later orders never break a tie.
	case isKeyOrder(q.Orders[0], true):
		p.desc = true
	default:
		p.naiveOrders = q.Orders
	}
	p.offset, p.limit = q.Offset, q.Limit
	p.pushedLimits = len(p.naiveFilters) == 0 && len(p.naiveOrders) == 0
	// A filter or an order in Go may look at values, KeysOnly or not.
	p.withValues = !q.KeysOnly || !p.pushedLimits
	p.withSizes = q.ReturnsSizes
	return p, nil
}

func isKeyOrder(o query.Order, desc bool) bool {
	switch o.(type) {
	case query.OrderByKey, *query.OrderByKey:
		return !desc
	case query.OrderByKeyDescending, *query.OrderByKeyDescending:
		return desc
	}
	return false
}

func (p *plan) pushFilter(f query.Filter) bool {
	switch f := f.(type) {
	case query.FilterKeyCompare:
		op, ok := sqlOps[f.Op]
		if !ok || !isText(f.Key) {
			return false
		}
		p.where = append(p.where, "key "+op+" "+p.arg(f.Key))
		return true
	case query.FilterKeyPrefix:
		if f.Prefix == "" {
			return true
		}
		end, ok := prefixEnd(f.Prefix)
		if !ok {
			return false
		}
		p.keyRange(f.Prefix, end)
		return true
	case query.FilterValueCompare:
		op, ok := sqlOps[f.Op]
		if !ok {
			return false
		}
		v := f.Value
		if v == nil {
			v = []byte{}
		}
		// bytea compares as bytes.Compare does.
		p.where = append(p.where, "value "+op+" "+p.arg(v))
		return true
	}
	return false
}

// runQuery returns the results of q, read from q in pages of pageSize rows
// in key order, each page its own statement, so that no connection is held
// between pages.
func runQuery(ctx context.Context, db querier, s *statements, q query.Query) (query.Results, error) {
	p, err := newPlan(q)
	if err != nil {
		return nil, err
	}
	cols := "key"
	if p.withValues {
		cols += ", value"
	} else if p.withSizes {
		cols += ", octet_length(value)"
	}
	order, after := "key", ">"
	if p.desc {
		order, after = "key DESC", "<"
	}

	var (
		page     []query.Entry
		last     string
		started  bool
		finished bool
		failed   bool
		returned int
	)
	fetch := func() error {
		args := append([]any(nil), p.args...)
		where := append([]string(nil), p.where...)
		arg := func(v any) string {
			args = append(args, v)
			return "$" + strconv.Itoa(len(args))
		}
		if started {
			where = append(where, "key "+after+" "+arg(last))
		}
		n := pageSize
		if p.pushedLimits && p.limit > 0 && p.limit-returned < n {
			n = p.limit - returned
		}
		sql := "SELECT " + cols + " FROM " + s.table
		if len(where) > 0 {
			sql += " WHERE " + strings.Join(where, " AND ")
		}
		sql += " ORDER BY " + order + " LIMIT " + arg(n)
		if !started && p.pushedLimits && p.offset > 0 {
			sql += " OFFSET " + arg(p.offset)
		}
		rows, err := db.Query(ctx, sql, args...)
		if err != nil {
			return wrap("query "+q.String(), err)
		}
		defer rows.Close()
		page = page[:0]
		for rows.Next() {
			e := query.Entry{Size: -1}
			switch {
			case p.withValues:
				err = rows.Scan(&e.Key, &e.Value)
				if e.Value == nil {
					e.Value = []byte{}
				}
				e.Size = len(e.Value)
			case p.withSizes:
				err = rows.Scan(&e.Key, &e.Size)
			default:
				err = rows.Scan(&e.Key)
			}
			if err != nil {
				return wrap("query "+q.String(), err)
			}
			page = append(page, e)
		}
		if err := rows.Err(); err != nil {
			return wrap("query "+q.String(), err)
		}
		started = true
		if len(page) < n {
			finished = true
		}
		if len(page) > 0 {
			last = page[len(page)-1].Key
		}
		return nil
	}
	next := func() (query.Result, bool) {
		if failed {
			return query.Result{}, false
		}
		if p.pushedLimits && p.limit > 0 && returned >= p.limit {
			return query.Result{}, false
		}
		if len(page) == 0 {
			if finished {
				return query.Result{}, false
			}
			if err := fetch(); err != nil {
				// Report the error, then end: never a silently
				// shorter result.
				failed = true
				return query.Result{Error: err}, true
			}
			if len(page) == 0 {
				return query.Result{}, false
			}
		}
		e := page[0]
		page = page[1:]
		returned++
		return query.Result{Entry: e}, true
	}
	// The first page is read now, so that a query the server refuses fails
	// here rather than in the first result.
	if err := fetch(); err != nil {
		return nil, err
	}
	res := query.ResultsFromIterator(q, query.Iterator{Next: next})
	if p.pushedLimits {
		return res, nil
	}
	naive := query.Query{Filters: p.naiveFilters, Orders: p.naiveOrders, Offset: p.offset, Limit: p.limit}
	res = query.NaiveQueryApply(naive, res)
	if q.KeysOnly {
		res = keysOnly(res)
	}
	return query.ResultsReplaceQuery(res, q), nil
}

// keysOnly drops the values that were read only for the filters and orders
// in Go; the sizes stay.
func keysOnly(res query.Results) query.Results {
	return query.ResultsFromIterator(res.Query(), query.Iterator{
		Next: func() (query.Result, bool) {
			r, ok := res.NextSync()
			r.Value = nil
			return r, ok
		},
		Close: res.Close,
	})
}
