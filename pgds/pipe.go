package pgds

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pstmt is one statement of a pipeline.
type pstmt struct {
	sql     string
	args    [][]byte
	formats []int16             // of args; nil: all text
	op      string              // what it does, for errors ("put /a")
	key     string              // the key it reads or writes, if one
	row     func(vals [][]byte) // called for each row; vals valid during the call only
}

// pipeError is the first statement of a segment the server refused; the
// rest of the segment was skipped.
type pipeError struct {
	stmt *pstmt
	err  *pgconn.PgError
}

// pipe sends segs in one round trip, each segment ended by a Sync (so a
// statement the server refuses skips the rest of its segment only), and
// reads the results. segErrs[i] is what the server refused in segs[i], if
// anything. err is a failure of the connection (a timeout, a lost
// socket): then pgconn has closed the connection, and what the server did
// is unknown for every segment but those segErrs, if not nil, has an
// error for (the server refused a statement of it, so the rest of it did
// not run).
//
// A statement with arguments is prepared (once per connection, in a round
// trip of its own) and then sent by name, so the server does not parse and
// plan it again each time.
func pipe(ctx context.Context, conn *pgx.Conn, segs ...[]pstmt) (segErrs []*pipeError, err error) {
	sds := make([][]*pgconn.StatementDescription, len(segs))
	for si, seg := range segs {
		sds[si] = make([]*pgconn.StatementDescription, len(seg))
		for i := range seg {
			if len(seg[i].args) > 0 {
				sd, err := conn.Prepare(ctx, seg[i].sql, seg[i].sql)
				if err != nil {
					return nil, err
				}
				sds[si][i] = sd
			}
		}
	}
	p := conn.PgConn().StartPipeline(ctx)
	for si, seg := range segs {
		for i := range seg {
			s := &seg[i]
			if sd := sds[si][i]; sd != nil {
				p.SendQueryStatement(sd, s.args, s.formats, resultBinary)
			} else {
				p.SendQueryParams(s.sql, s.args, nil, s.formats, resultBinary)
			}
		}
		p.SendPipelineSync()
	}
	if err := p.Flush(); err != nil {
		_ = p.Close()
		return nil, err
	}
	segErrs = make([]*pipeError, len(segs))
	fatal := func(err error) ([]*pipeError, error) {
		_ = p.Close()
		return segErrs, err
	}
	for si, seg := range segs {
		for i := range seg {
			s := &seg[i]
			res, err := p.GetResults()
			var pgErr *pgconn.PgError
			if err == nil {
				rr, ok := res.(*pgconn.ResultReader)
				if !ok {
					return fatal(fmt.Errorf("pipeline: %s: unexpected %T", s.op, res))
				}
				for rr.NextRow() {
					if s.row != nil {
						s.row(rr.Values())
					}
				}
				_, err = rr.Close()
			}
			if err == nil {
				continue
			}
			if !errors.As(err, &pgErr) {
				return fatal(err)
			}
			segErrs[si] = &pipeError{stmt: s, err: pgErr}
			break
		}
		res, err := p.GetResults()
		if err == nil {
			if _, ok := res.(*pgconn.PipelineSync); !ok {
				err = fmt.Errorf("pipeline: want the end of a segment, got %T", res)
			}
		}
		if err != nil {
			// What the server refused in this segment (a FATAL error
			// ends the session) is still known: the rest of the
			// segment did not run.
			_ = p.Close()
			return segErrs, err
		}
	}
	if err := p.Close(); err != nil {
		return nil, err
	}
	return segErrs, nil
}

var resultBinary = []int16{1}

// Parameter formats of the statements that take a key (text) and a value
// (binary bytea).
var keyValueFormats = []int16{0, 1}

func putStmt(s *statements, key string, value []byte) pstmt {
	return pstmt{sql: s.put, args: [][]byte{[]byte(key), value}, formats: keyValueFormats, op: "put " + key, key: key}
}

func delStmt(s *statements, key string) pstmt {
	return pstmt{sql: s.del, args: [][]byte{[]byte(key)}, op: "delete " + key, key: key}
}

func execStmt(sql string) pstmt { return pstmt{sql: sql, op: sql} }

// lockIDs are the advisory lock numbers of keys in table: a 64-bit FNV-1a
// hash of both, sorted and without repeats, the order every transaction
// takes them in (so two never wait for each other's).
func lockIDs(table string, keys []string) []int64 {
	ids := make([]int64, 0, len(keys))
	for _, k := range keys {
		h := fnv.New64a()
		h.Write([]byte(table))
		h.Write([]byte{0})
		h.Write([]byte(k))
		ids = append(ids, int64(h.Sum64()))
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// lockStmt takes the advisory locks ids, in their order (unnest returns
// the elements of the array in order, and each row's lock is taken as the
// row is produced).
func lockStmt(ids []int64) pstmt {
	var b strings.Builder
	b.WriteByte('{')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	b.WriteByte('}')
	return pstmt{sql: `SELECT pg_advisory_lock(k) FROM unnest($1::bigint[]) AS k`, args: [][]byte{[]byte(b.String())}, op: "lock"}
}

// textArray is keys as a PostgreSQL text[] literal (text format).
func textArray(keys []string) []byte {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for _, c := range []byte(k) {
			if c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return []byte(b.String())
}
