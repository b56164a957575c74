// Package pgtest gives tests a real PostgreSQL server: a private one that it
// starts itself, or the one named by the STOWAGE_PG_URL environment variable.
//
// A test binary that uses it calls Main from its TestMain, so that the
// private server is stopped when the tests end:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// and each test asks for a fresh, empty database:
//
//	url := pgtest.URL(t) // skips the test when no PostgreSQL is available
//
// The private server is started on the first call to URL, once per test
// binary: initdb and postgres from PATH or /usr/lib/postgresql/<version>/bin,
// a data directory and unix socket directory in a new temporary directory,
// listening on 127.0.0.1 only, on a free port, password authentication over
// TCP, fsync off (a test server need not survive a power cut). As root
// (initdb and postgres refuse to run as root) both run as the user
// "postgres", or "nobody" when there is none, which then owns the temporary
// directory. The server gets SIGQUIT if the test binary dies without reaching
// the end of Main (a timeout panic, a kill), so none outlives it; only its
// temporary directory may then be left behind.
//
// With STOWAGE_PG_URL set (a postgres:// URL whose role may CREATE DATABASE),
// no server is started and each test's database is created there instead.
// Without either, URL skips the test with SkipMessage, or fails it when
// STOWAGE_PG_REQUIRED is set.
package pgtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable that points the tests at an existing
// server instead of a private one.
const EnvURL = "STOWAGE_PG_URL"

// EnvRequired names the environment variable that, when set (as CI sets
// it), makes a missing PostgreSQL fail the tests instead of skipping them.
const EnvRequired = "STOWAGE_PG_REQUIRED"

// SkipMessage is the one line a test skips with when no PostgreSQL is
// available.
const SkipMessage = "no PostgreSQL: install it (apt-get install postgresql; initdb and postgres on PATH or in /usr/lib/postgresql/*/bin) or set " + EnvURL + "=postgres://user:password@host:port/db to run this test"

const superuser = "stowage"

var (
	mainCalled atomic.Bool

	startOnce sync.Once
	srv       *server // nil when none is available
	srvErr    error   // why the private server could not start
	skip      bool    // no binaries and no EnvURL: skip

	dbCounter atomic.Int64
)

// Main runs the tests of m and then stops the private server, if one was
// started. Call it from TestMain and exit with its result.
func Main(m *testing.M) int {
	mainCalled.Store(true)
	code := m.Run()
	if srv != nil {
		if err := srv.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stop server:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// URL returns the connection string of a new, empty database that belongs to
// t alone. It skips t with SkipMessage when no PostgreSQL is available and
// fails it when one is available but does not work.
func URL(t testing.TB) string {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("pgtest: call pgtest.Main from TestMain so that the server is stopped: func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }")
	}
	startOnce.Do(start)
	if skip {
		if os.Getenv(EnvRequired) != "" {
			t.Fatalf("pgtest: %s is set: %s", EnvRequired, SkipMessage)
		}
		t.Skip(SkipMessage)
	}
	if srvErr != nil {
		t.Fatalf("pgtest: %v", srvErr)
	}
	name := fmt.Sprintf("t%d_%s", dbCounter.Add(1), rand.Text()[:8])
	name = strings.ToLower(name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database: %v", err)
		}
	})
	return srv.urlFor(name)
}

// server is a PostgreSQL server: private (cmd != nil) or external.
type server struct {
	admin *url.URL // a database the role may connect to, to create others

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	dir    string
	log    string
}

func (s *server) urlFor(db string) string {
	u := *s.admin
	u.Path = "/" + db
	return u.String()
}

func (s *server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.admin.String())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func start() {
	if env := os.Getenv(EnvURL); env != "" {
		u, err := url.Parse(env)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			srvErr = fmt.Errorf("%s must be a postgres:// URL, got %q", EnvURL, env)
			return
		}
		srv = &server{admin: u}
		return
	}
	bin, ok := findBinaries()
	if !ok {
		skip = true
		return
	}
	// Another process may take the free port between our probe and the
	// server's bind: try a few ports.
	for range 3 {
		srv, srvErr = startPrivate(bin)
		if srvErr == nil || !strings.Contains(srvErr.Error(), "could not bind") {
			return
		}
	}
}

// findBinaries returns the directory holding initdb and postgres: that of the
// initdb on PATH, else the newest /usr/lib/postgresql/<version>/bin.
func findBinaries() (string, bool) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, true
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(a) - version(b) })
	for _, dir := range slices.Backward(dirs) {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, true
		}
	}
	return "", false
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// runAs returns the credentials to run the server with: nil unless we are
// root, when PostgreSQL refuses to run.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
	}
	return nil, errors.New("running as root and there is neither a postgres nor a nobody user to run PostgreSQL as")
}

// tempRoot is where the server's directory goes: the usual temporary
// directory, unless the user the server runs as could not reach it (a
// TMPDIR under root's home), then /tmp.
func tempRoot(cred *syscall.Credential) string {
	root := os.TempDir()
	if cred == nil {
		return root
	}
	for dir := root; ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if dir == filepath.Dir(dir) {
			return root
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startPrivate(bin string) (_ *server, err error) {
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(tempRoot(cred), "pgtest-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	password := rand.Text()
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if cred != nil {
		for _, p := range []string{dir, pwfile} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, fmt.Errorf("hand %s to uid %d: %w", p, cred.Uid, err)
			}
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"),
		"-D", data, "-U", superuser, "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"),
		"-D", data,
		"-h", "127.0.0.1",
		"-p", strconv.Itoa(port),
		"-k", dir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "shared_buffers=32MB",
		"-c", "max_connections=200",
	)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Pdeathsig: SIGQUIT (immediate shutdown) reaches the server when the
	// test binary dies before Main could stop it. Go sets it after
	// switching to cred, so the change of user does not clear it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &server{
		admin: &url.URL{
			Scheme:   "postgres",
			User:     url.UserPassword(superuser, password),
			Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Path:     "/postgres",
			RawQuery: "sslmode=disable&connect_timeout=10",
		},
		cmd:    cmd,
		exited: make(chan struct{}),
		dir:    dir,
		log:    logPath,
	}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(30 * time.Second); err != nil {
		_ = s.stop()
		return nil, err
	}
	return s, nil
}

// waitReady polls until the server accepts a connection, it exits, or the
// timeout passes.
func (s *server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := s.exec(ctx, "SELECT 1")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("postgres exited at start: %s", s.logTail())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after %v: %v: %s", timeout, err, s.logTail())
		}
	}
}

func (s *server) logTail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// stop shuts a private server down (fast shutdown, then SIGKILL) and removes
// its directory. An external server is left alone.
func (s *server) stop() error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	var err error
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
		err = fmt.Errorf("postgres did not stop within 20s; killed: %s", s.logTail())
	}
	if rmErr := os.RemoveAll(s.dir); rmErr != nil && err == nil {
		err = rmErr
	}
	return err
}
