package fs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailhook/mailhook/store"
	"github.com/mailhook/mailhook/store/storetest"
)

// Helper processes: the test binary re-executed with these variables set
// runs TestHelperProcess only, which does one job on a shared root and
// reports on stdout, one line per fact.
const (
	envRoot = "MAILHOOK_FS_HELPER_ROOT"
	envJob  = "MAILHOOK_FS_HELPER_JOB"
	envSync = "MAILHOOK_FS_HELPER_SYNC" // a SyncMode, as a number
)

// modes runs f once per durability mode, as subtests.
func modes(t *testing.T, f func(t *testing.T, m SyncMode)) {
	for _, m := range []SyncMode{SyncFS, SyncFiles} {
		t.Run(m.String(), func(t *testing.T) { f(t, m) })
	}
}

func syncEnv(m SyncMode) string { return envSync + "=" + strconv.Itoa(int(m)) }

func TestHelperProcess(t *testing.T) {
	root, job := os.Getenv(envRoot), os.Getenv(envJob)
	if root == "" {
		t.Skip("only runs as a helper process")
	}
	mode, _ := strconv.Atoi(os.Getenv(envSync))
	s, err := New(root, WithSync(SyncMode(mode)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	// Wait for the parent's go-ahead so that every process starts at once.
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, "no go-ahead:", err)
		os.Exit(3)
	}
	out := &lineWriter{w: os.Stdout}
	var jobErr error
	switch job {
	case "cas":
		jobErr = casJob(context.Background(), s, out)
	case "create":
		jobErr = createJob(context.Background(), s, os.Getenv("MAILHOOK_FS_HELPER_NAME"), out)
	case "churn":
		jobErr = churnJob(context.Background(), s, out)
	default:
		jobErr = fmt.Errorf("unknown job %q", job)
	}
	if jobErr != nil {
		fmt.Fprintln(os.Stderr, jobErr)
		os.Exit(3)
	}
	out.println("done")
	os.Exit(0) // skip the testing framework's own output
}

// lineWriter writes whole lines from many goroutines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) println(a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.w, a...)
}

const (
	casWorkers = 4
	casEach    = 15
	createKeys = 100
)

// casJob increments the counter "counter" casWorkers*casEach times.
func casJob(ctx context.Context, s store.Store, out *lineWriter) error {
	var wg sync.WaitGroup
	errs := make(chan error, casWorkers)
	for range casWorkers {
		wg.Go(func() {
			for range casEach {
				if _, err := storetest.IncrementCAS(ctx, s, "counter"); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// createJob tries to create once/000..once/099 holding name, and reports
// the ones it won.
func createJob(ctx context.Context, s store.Store, name string, out *lineWriter) error {
	var wg sync.WaitGroup
	errs := make(chan error, createKeys)
	for i := range createKeys {
		wg.Go(func() {
			key := fmt.Sprintf("once/%03d", i)
			_, err := s.Put(ctx, key, strings.NewReader(name), store.PutOptions{IfNoneMatch: true})
			switch {
			case err == nil:
				out.println("won", key)
			case !errors.Is(err, store.ErrPrecondition):
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// churnBody is version v of key: its first line repeated, with a length
// that depends on v, so that any partial or mixed file is detectable.
func churnBody(key string, v int) string {
	line := fmt.Sprintf("%s v%d\n", key, v)
	return strings.Repeat(line, 1+(v*37)%300)
}

// checkChurnBody returns the version in body, or an error if body is not
// exactly churnBody(key, v) for some v.
func checkChurnBody(key, body string) (int, error) {
	first, _, ok := strings.Cut(body, "\n")
	var v int
	if _, err := fmt.Sscanf(first, key+" v%d", &v); !ok || err != nil {
		return 0, fmt.Errorf("bad first line %q", first)
	}
	if body != churnBody(key, v) {
		return 0, fmt.Errorf("version %d is not whole (%d bytes)", v, len(body))
	}
	return v, nil
}

// churnJob overwrites keys churn/0..7 with ever newer versions until
// killed, reporting each acknowledged version.
func churnJob(ctx context.Context, s store.Store, out *lineWriter) error {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			key := fmt.Sprintf("churn/%d", w)
			for v := 1; ; v++ {
				opts := store.PutOptions{IfNoneMatch: v == 1}
				if _, err := s.Put(ctx, key, strings.NewReader(churnBody(key, v)), opts); err != nil {
					errs <- err
					return
				}
				out.println("acked", key, v)
			}
		})
	}
	wg.Wait()
	return <-errs
}

type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stdout lines, closed at EOF
}

// startHelper starts the test binary as a helper process doing job on root.
func startHelper(t *testing.T, root, job string, env ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envRoot+"="+root, envJob+"="+job)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = &testWriter{t: t}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, stdin: stdin, lines: make(chan string, 1024)}
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return h
}

func (h *helper) start(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(h.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
}

// collect reads all remaining lines and waits for a clean exit.
func (h *helper) collect(t *testing.T) []string {
	t.Helper()
	var lines []string
	for l := range h.lines {
		lines = append(lines, l)
	}
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper %s: %v", h.cmd.Env[len(h.cmd.Env)-1], err)
	}
	if len(lines) == 0 || lines[len(lines)-1] != "done" {
		t.Fatalf("helper did not finish: %q", lines)
	}
	return lines[:len(lines)-1]
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Logf("helper stderr: %s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// TestMultiProcessCAS: compare-and-swap increments from two other
// processes and this one, all on one root, lose no update.
func TestMultiProcessCAS(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	modes(t, testMultiProcessCAS)
}

func testMultiProcessCAS(t *testing.T, m SyncMode) {
	root := t.TempDir()
	s := newTestStore(t, root, WithSync(m))
	putString(t, s, "counter", "0", store.PutOptions{})
	helpers := []*helper{startHelper(t, root, "cas", syncEnv(m)), startHelper(t, root, "cas", syncEnv(m))}
	for _, h := range helpers {
		h.start(t)
	}
	if err := casJob(t.Context(), s, &lineWriter{w: io.Discard}); err != nil {
		t.Fatal(err)
	}
	for _, h := range helpers {
		h.collect(t)
	}
	want := strconv.Itoa(3 * casWorkers * casEach)
	if got := readKey(t, s, "counter"); got != want {
		t.Errorf("counter = %s, want %s: updates were lost", got, want)
	}
}

// TestMultiProcessCreate: IfNoneMatch across processes has exactly one
// winner per key.
func TestMultiProcessCreate(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	modes(t, testMultiProcessCreate)
}

func testMultiProcessCreate(t *testing.T, m SyncMode) {
	root := t.TempDir()
	s := newTestStore(t, root, WithSync(m))
	var helpers []*helper
	for _, name := range []string{"p1", "p2"} {
		helpers = append(helpers, startHelper(t, root, "create", syncEnv(m), "MAILHOOK_FS_HELPER_NAME="+name))
	}
	for _, h := range helpers {
		h.start(t)
	}
	winner := map[string]string{}
	var lines []string
	out := &lineWriter{w: writerFunc(func(b []byte) (int, error) {
		lines = append(lines, strings.TrimSpace(string(b)))
		return len(b), nil
	})}
	if err := createJob(t.Context(), s, "parent", out); err != nil {
		t.Fatal(err)
	}
	record := func(name string, lines []string) {
		for _, l := range lines {
			key, ok := strings.CutPrefix(l, "won ")
			if !ok {
				t.Fatalf("unexpected line %q", l)
			}
			if w, dup := winner[key]; dup {
				t.Errorf("%s won by %s and %s", key, w, name)
			}
			winner[key] = name
		}
	}
	record("parent", lines)
	record("p1", helpers[0].collect(t))
	record("p2", helpers[1].collect(t))
	if len(winner) != createKeys {
		t.Errorf("%d keys have a winner, want %d", len(winner), createKeys)
	}
	for key, name := range winner {
		if got := readKey(t, s, key); got != name {
			t.Errorf("%s holds %q, but %s won it", key, got, name)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestKill9: a process killed with SIGKILL while writing leaves only whole
// objects, each at least as new as the last version it acknowledged.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	modes(t, testKill9)
}

func testKill9(t *testing.T, m SyncMode) {
	root := t.TempDir()
	h := startHelper(t, root, "churn", syncEnv(m))
	h.start(t)
	acked := map[string]int{}
	deadline := time.After(30 * time.Second)
	for n := 0; n < 400; n++ {
		select {
		case l, ok := <-h.lines:
			if !ok {
				t.Fatalf("helper exited early after %d acks", n)
			}
			var key string
			var v int
			if _, err := fmt.Sscanf(l, "acked %s %d", &key, &v); err != nil {
				t.Fatalf("unexpected line %q", l)
			}
			acked[key] = max(acked[key], v)
		case <-deadline:
			t.Fatalf("only %d acks in 30s", n)
		}
	}
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = h.cmd.Wait()
	for l := range h.lines { // acks written just before the kill count too
		var key string
		var v int
		if _, err := fmt.Sscanf(l, "acked %s %d", &key, &v); err == nil {
			acked[key] = max(acked[key], v)
		}
	}

	s := newTestStore(t, root, WithSync(m))
	listed := 0
	for obj, err := range s.List(t.Context(), "") {
		if err != nil {
			t.Fatal(err)
		}
		listed++
		v, err := checkChurnBody(obj.Key, readKey(t, s, obj.Key))
		if err != nil {
			t.Errorf("%s: %v", obj.Key, err)
			continue
		}
		if v < acked[obj.Key] {
			t.Errorf("%s holds v%d, but v%d was acknowledged", obj.Key, v, acked[obj.Key])
		}
	}
	if listed < len(acked) {
		t.Errorf("%d objects listed, %d keys acknowledged", listed, len(acked))
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Error(err)
	}
}

func readKey(t *testing.T, s store.Store, key string) string {
	t.Helper()
	rc, _, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
