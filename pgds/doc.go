// Package pgds is a go-datastore on PostgreSQL: a datastore.Batching and
// datastore.TxnDatastore over one table, through pgx and its pool. It lets
// the hosts of a fleet keep their stowage metadata in one database server
// instead of each in its own embedded LevelDB.
//
// # Basics
//
//	ds, err := pgds.Open(ctx, "postgres://stowage:secret@db:5432/stowage?connect_timeout=5")
//	...
//	defer ds.Close()
//	r, err := repo.New(ctx, ds, repo.WithQuotaMaxBytes(100<<30))
//
// New takes a *pgxpool.Pool the application already has instead; Close then
// leaves the pool open. Either creates the table if it is missing:
//
//	CREATE TABLE datastore (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL)
//
// WithTable names another table, so that several stores (one per host, or
// metadata and blocks) share a database. The "C" collation makes key order
// byte order, as go-datastore expects; a table that exists with another
// collation or column types is refused with ErrTableSchema.
//
// # Queries
//
// The server does the work that its primary key index serves: the Prefix
// (as a key range, "/a" selecting "/a/..." only), key comparisons and key
// prefixes among the Filters, value comparisons, ordering by key (the order
// of every query without Orders), Offset and Limit. Any other filter or
// order runs in Go through query.NaiveQueryApply, and then Offset and Limit
// do too. Filters and orders see the values also when KeysOnly is set.
//
// Results are read in pages of 1000 rows, each its own statement, so no
// connection is held while the caller consumes them and a big result is not
// held in memory (except where an order runs in Go). A query is therefore
// not a snapshot: a key present during the whole query is returned exactly
// once, a key written or deleted meanwhile may or may not be. A page that
// fails is a Result with an Error, never a silently shorter result.
//
// # Batches and transactions
//
// Batch.Commit writes its puts and deletes, in the order they were made, in
// one transaction (BEGIN, the statements pipelined, COMMIT): all or
// nothing, so repo.New needs no WithTransactions.
// NewTransaction begins a SERIALIZABLE transaction. Two transactions that
// read and write the same records concurrently cannot both commit: one
// fails, in any call or at Commit, with an error wrapping ErrSerialization
// (a *ConflictError naming the keys, as far as PostgreSQL says), and is
// retried from the start by the caller.
//
// A transaction's Puts and Deletes are held until its Commit, which sends
// them with the COMMIT in one round trip, or until its next read, which
// must see them and carries them in its round trip (a Query sends them in
// one of their own); it reads each key at most once, its snapshot never
// changing.
// NewLockedTransaction (LockingTxnDatastore) also takes locks on keys
// before the transaction begins, so that transactions changing the same
// records queue instead of failing each other, and reads keys known in
// advance in the same round trip.
//
// A batch or transaction whose connection fails after COMMIT was sent may
// have been written or not: its error wraps ErrCommitUnknown (and the error
// of pgx). Read back to learn the outcome, as the stowage repo does when it
// refuses writes until it is reopened. An error without ErrCommitUnknown
// from Commit means nothing was written.
//
// Round trips, as RoundTrips counts them (TestRoundTrips_PerChangeAsDocumented
// fails if a change takes more): Get, Has, GetSize, Put, Delete and a page
// of a Query, 1 each; Batch.Commit, 3; a transaction, 1 to lock, begin and
// read the prefetched keys, 1 per read of another key (each key once),
// (with the writes pending before it), 1 to write, commit and unlock, or to write, commit and begin the next
// transaction on the same locks (CommitAndBegin, when a host hands them to
// its next change, which so saves its first). A change of the stowage repo in shared
// mode on pgds: ReserveSlot 5, Store.PutBlock 6, Release 5,
// DeleteReservation 7, AddAvailability and ModifyAvailability 3, a
// repo.PutBlock 3, repo.Reserve 2, a read of one record (Availability,
// repo.GetBlock) 1 or 2, a read of several in one consistent state
// (ReservationForSlot, a listing: one read-only transaction) 4. The first use of a statement on a connection costs one more (it
// is prepared), not counted.
//
// # Caveats
//
//   - Keys are PostgreSQL text: valid UTF-8 without NUL bytes. Put refuses
//     others with ErrInvalidKey. Stowage's keys always qualify.
//   - Every call is a round trip to the server. Get, a small batch and a
//     change cost about what the same statements cost through pgx directly
//     (see BenchmarkBatch, BenchmarkGet and BenchmarkChange), and far more
//     than LevelDB's in-process calls.
//   - Sync does nothing: a write is as durable as the server's
//     synchronous_commit and replication make it.
//   - A Txn holds a pool connection until Commit or Discard; always call
//     one of them. Its Query reads the whole result at once.
//   - Several repos on one table must all be opened with repo.WithShared
//     (see "Running a fleet"); a repo opened without it keeps its counters
//     in memory and assumes it is the only writer: give such a host a table
//     of its own (WithTable).
//
// # Running a fleet
//
// A fleet is several hosts selling one pooled capacity: one quota, one set
// of availabilities and reservations, in one table every host reaches, each
// host opening its repo in shared mode (blocks, by default, are rows of the
// same table, which every host must reach: any host may delete a
// reservation another wrote, and its blocks):
//
//	ds, err := pgds.Open(ctx, url)
//	...
//	r, err := repo.New(ctx, ds, repo.WithShared(), repo.WithQuotaMaxBytes(100<<30))
//	...
//	store := reservations.New(r)
//
// Every change is then one SERIALIZABLE transaction. A change that may
// write first locks the quota counters (NewLockedTransaction: a
// session-level advisory lock per key, taken in one fixed order before the
// transaction begins, so that its snapshot sees the commit of the change
// that held the lock before it) and reads them in the same round trip;
// its writes go with the COMMIT and the unlock in one more. The changes of
// all hosts so queue for the counters instead of failing each other with
// ErrSerialization: SERIALIZABLE stays, and finds nothing left to refuse
// among them. What still fails with ErrSerialization (a writer that does
// not lock, another application's transaction) is run again from the
// start, up to 30 times or 10 s per call, then repo.ErrConflict names the
// keys, nothing written; one that fails with ErrCommitUnknown is reported
// as repo.ErrWriteFailed. Every call is bounded by its ctx and a grace
// (see "A dead network"); a host killed holding the lock loses its
// connection, and the server its lock, at once.
//
// The tests run 4 processes of 8 goroutines on the same slots and 3
// availabilities, and 8 processes of 8 goroutines on one availability and
// on one availability each (for STOWAGE_FLEET_DURATION, 3 s by default;
// 30 s as measured below), SIGKILL one mid-run, kill sessions and cut the
// server off mid-run, and check that no call fails (ErrConflict
// included), no slot is held twice, nothing acknowledged is lost and the
// books balance while they run and after.
//
// What bounds a fleet's throughput: the counters are one row every change
// of bytes writes, so the changes of the whole fleet run one at a time, in
// the order they got its lock. Throughput is one change per lock hold
// time, and the hold time is the round trips a change makes while holding
// it (the lock's answer, each read of a record it did not know in advance,
// the COMMIT) plus the host's own work between them: about 0.3 to 0.5 ms
// per change with the server on the same 2 loaded cores
// (BenchmarkChange, 2 round trips, 0.17 to 0.34 ms; a change of the
// reservation cycle makes 5 to 7). Adding hosts adds no throughput: it
// only lengthens the queue. A lock passing from one host to another costs
// more (the wake-up of another process) than within a host, so a host
// whose changes queue behind each other hands the locks from one to the
// next without releasing them, in the round trip of the COMMIT, up to 8
// changes in a row before it lets another host's turn come. And the
// changes of a host queued behind the one holding the locks (up to 8 in
// all) join its transaction, each run in turn and seeing the earlier
// ones' writes, which go to the server with its first read: one COMMIT,
// and one flush of the server's log, for the group, and the round trips
// of a change's begin and COMMIT saved for each change joined (a group
// commit). Each change keeps its own outcome: one that fails (its own
// error, its ctx ending) ends the transaction before anything is written,
// and every change of the group runs again alone. Retries are not the
// bound any more: none were seen in any run below.
//
// Measured on 2 shared cores, server and hosts on them, in the same runs
// as the code before the locks (BenchmarkFleet, 640 cycles; a cycle is
// ReserveSlot, two Store.PutBlock, DeleteReservation; the README has the
// table; six runs each, interleaved): 4 processes of 8 goroutines make
// about 1780 calls per second on one availability (median; before: 1330)
// and 1590 on one each (before: 1270), 1.34× and 1.26×, with no retry at
// all (mean, 99th percentile and maximum 0 at 1, 2, 4 and 8 processes;
// before: 0.02 to 0.10 retries per call at 4 processes and, in the
// issue's runs, calls failing with ErrConflict after 30); 8 processes make
// 1010 to 1630. One change (BenchmarkChange) costs 0.28 to 0.34 ms, about
// what raw pgx doing the minimum costs (0.24 to 0.44 ms). The round trips
// fell by half or more (a Store.PutBlock from 13 to 6, a DeleteReservation
// from 18 to 7, one less for a change handed the locks); on these two
// cores, shared with other work, the server's and the hosts' CPU bound
// the rest. The group commit then took 4 processes from about 1650 calls
// per second on one availability each to about 2590 (1.57×), and from
// about 1660 on one availability to about 2750 (1.66×): medians of three
// runs each, interleaved, no retry at all; against the code before the
// locks (1025 and 1096), 2.5× both.
//
// A fleet that outgrows one primary (or whose hosts must not wait for
// each other) splits its capacity: several pools, each its own quota,
// availabilities and reservations in a table or database of its own
// (WithTable, or another server), each host opening the pool of the
// capacity it sells; a sale never spans pools, so they never wait for
// each other. A pool is then one row of counters again, and scales with
// the number of pools, not of hosts. Read replicas do not help: every
// change writes the counters on the primary. Choose LevelDB for a host
// selling its own disks, a fleet for hosts that must sell one capacity
// together.
//
// # A dead network
//
// A network that stops forwarding while keeping the socket open (a
// firewall that drops packets, a NAT or load balancer that lost its state)
// gives no error: a round trip just never ends. What bounds it:
//
//   - The caller's ctx, in every call: pgx sets the ctx's deadline on the
//     socket, so a round trip ends with the ctx. A call without a deadline
//     can wait as long as the kernel keeps the connection (by default
//     about 15 minutes of retransmissions for data sent and unanswered).
//     Give every call a deadline.
//   - A connection whose round trip ended without an answer is closed,
//     never handed out again: what it holds is unknown. A Txn whose Commit
//     or Discard fails other than by the server's answer closes its
//     connection; the pool drops connections pgx closed on a timeout.
//   - In shared mode (repo.WithShared) the repo runs every round trip of a
//     call under the caller's ctx, waits for the host's earlier calls under
//     it too, and gives the ROLLBACK of a transaction that did not commit,
//     which must run even after the ctx ended, a grace of its own
//     (repo.WithSharedGrace, default 3 s). A call so returns at most the
//     grace after its ctx ends. The tests hold a TCP proxy at a ROLLBACK,
//     at a COMMIT and at a random point: every call with a 1 s ctx returned
//     within that bound, the host went on once the proxy forwarded again,
//     and nothing acknowledged was lost.
//
// That is all pgds sets itself: it changes no server setting and no socket
// option. The server side is the connection string's to set (each is a
// run-time parameter PostgreSQL takes from it, see
// TestOpen_ServerTimeoutsFromConnectionString):
//
//	postgres://stowage:secret@db:5432/stowage?connect_timeout=5&statement_timeout=30000&idle_in_transaction_session_timeout=60000&tcp_user_timeout=30000&tcp_keepalives_idle=30&tcp_keepalives_interval=10&tcp_keepalives_count=3
//
// What each does:
//
//   - connect_timeout (seconds) bounds each connection attempt; the dial
//     also honours ctx.
//   - statement_timeout (ms) makes the server cancel a statement that runs
//     too long, a bound for calls whose ctx has none.
//   - idle_in_transaction_session_timeout (ms) ends a session that a host
//     cut off left inside a transaction, releasing its locks for the
//     others; tcp_user_timeout (ms) and tcp_keepalives_idle, _interval
//     (seconds) and _count make the server notice a dead host, idle or
//     not, in about that long. Without them a session of a host that
//     vanished keeps its transaction open until the server's kernel gives
//     up on the socket.
//
// These matter more in shared mode, whose changes hold the lock on the
// counters (a session-level lock, which a transaction's end does not
// release): a host cut off from the server while it holds it stops every
// change of the fleet until the server ends that session, after
// idle_in_transaction_session_timeout when the session was left in a
// transaction, after tcp_user_timeout or the keepalives when it was not
// (the unlock goes with the COMMIT, so only a cut between the two leaves
// an idle session holding it). A host killed, or whose connection closes,
// releases it at once.
//
// On the host's side pgx dials with Go's TCP keepalives (15 s idle, then
// probes every 15 s), which reach only idle connections. A host that wants
// a client-side TCP_USER_TIMEOUT too makes its own pool (a DialFunc on
// pgxpool.Config.ConnConfig whose net.Dialer sets the socket option in its
// Control function) and passes it to New.
//
// # Other servers
//
// pgds was tested against PostgreSQL 15 only (the tests start a private
// server; see pgds/internal/pgtest). CockroachDB and YugabyteDB speak the
// PostgreSQL protocol, offer SERIALIZABLE and report conflicts as SQLSTATE
// 40001 (which pgds reports as ErrSerialization, so shared mode retries
// them), so they may work, but nothing here was run against them: their
// support for COLLATE "C", for the catalog query New uses to check the
// table, and for ON CONFLICT is untested, and their optimistic transactions
// may conflict more often than PostgreSQL's. Run this package's tests with
// STOWAGE_PG_URL pointing at such a server before relying on it.
package pgds
