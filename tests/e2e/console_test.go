package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// envConsoleShots names the directory TestConsole saves its screenshots
// in (docs/console in the repository); a temporary one when unset.
const envConsoleShots = "WRENN_CONSOLE_SCREENSHOTS"

// TestConsole drives the web console in a real headless Chromium against
// a real server with real VMs, as a user would: sign up, a wrong password,
// log in, create an API key, create a sandbox, type into its terminal,
// upload a file, read its metrics, pause and resume it, destroy it,
// snapshot a second one to a template and delete that, and read the API
// reference. Each step is checked on the page, and against
// the API where the page could be wrong in a way it would not show.
func TestConsole(t *testing.T) {
	chrome := requireChromium(t)
	s := startVMServer(t, shortTempDir(t))
	requireConsoleBuilt(t, s)
	shots := os.Getenv(envConsoleShots)
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, chrome, s.url, shots)
	start := time.Now()
	const email, password = "console@example.com", "console-tests"

	// Sign up.
	b.navigate("/signup")
	b.wait("the sign-up form", `document.querySelector('#auth-form[data-mode=signup]')`)
	b.typeInto("#auth-email", email)
	b.typeInto("#auth-password", password)
	b.click("#auth-submit")
	b.wait("the sandbox list after sign-up", `document.querySelector('#sandboxes-empty')`)
	if got := b.text("#user-email"); got != email {
		t.Fatalf("signed in as %q, want %q", got, email)
	}

	// Log out; a wrong password shows the API's own words; log in.
	b.click("#logout")
	b.wait("the login form", `document.querySelector('#auth-form[data-mode=login]')`)
	b.shot("01-login")
	want := apiMessage(t, s, "POST", "/v1/auth/login", `{"email":"`+email+`","password":"wrong password"}`)
	b.typeInto("#auth-email", email)
	b.typeInto("#auth-password", "not the password")
	b.click("#auth-submit")
	b.wait("the login error", `document.querySelector('#auth-error')`)
	if got := b.text("#auth-error"); got != want {
		t.Fatalf("a wrong password shows %q, want the API's message %q", got, want)
	}
	b.shot("02-login-error")
	b.clear("#auth-password")
	b.typeInto("#auth-password", password)
	b.click("#auth-submit")
	b.wait("the sandbox list after login", `document.querySelector('#sandboxes-empty')`)

	// An API key, shown once, that works.
	b.click("#nav-keys")
	b.wait("the keys page", `document.querySelector('#keys-table')`)
	b.typeInto("#key-name", "laptop")
	b.click("#key-create")
	b.wait("the new key", `document.querySelector('#new-key')`)
	key := b.text("#new-key")
	if !strings.HasPrefix(key, "wrn_") {
		t.Fatalf("the new key reads %q", key)
	}
	b.wait("the key in the list", `[...document.querySelectorAll('[data-testid=key-row]')].some(r => r.textContent.includes('laptop'))`)
	if code, body := s.do("GET", "/v1/sandboxes", hdr{"X-API-Key": key}, nil); code != 200 {
		t.Fatalf("the key the console showed does not work: %d %s", code, body)
	}
	b.shot("03-keys")
	// A second key, deleted: gone from the page and from the API.
	b.clear("#key-name")
	b.typeInto("#key-name", "short-lived")
	b.click("#key-create")
	b.wait("the second key", `[...document.querySelectorAll('[data-testid=key-row]')].some(r => r.textContent.includes('short-lived'))`)
	b.click(`[data-testid=key-row][data-name=short-lived] [data-testid=key-delete]`)
	b.wait("the delete dialog", `document.querySelector('#confirm-dialog')?.textContent.includes('short-lived')`)
	b.click("#confirm-ok")
	b.wait("the second key gone", `![...document.querySelectorAll('[data-testid=key-row]')].some(r => r.textContent.includes('short-lived')) && document.querySelectorAll('[data-testid=key-row]').length === 1`)
	var keys []struct {
		Name string `json:"name"`
	}
	s.must(200, "GET", "/v1/api-keys", hdr{"Authorization": "Bearer " + b.value("the session", `JSON.parse(localStorage.getItem('wrenn.session')).token`)}, nil, &keys)
	if len(keys) != 1 || keys[0].Name != "laptop" {
		t.Fatalf("after the delete the API lists keys %+v", keys)
	}

	// Create a sandbox through the form.
	b.click("#nav-sandboxes")
	b.wait("the empty sandbox list", `document.querySelector('#sandboxes-empty')`)
	b.click("#sandbox-new")
	b.wait("the create form", `document.querySelector('#create-form') && document.querySelector('#create-template option[value=minimal]')`)
	b.clear("#create-timeout")
	b.typeInto("#create-timeout", "900")
	b.click("#create-metadata-add")
	b.typeInto("#create-metadata [data-testid=pair-key]", "purpose")
	b.typeInto("#create-metadata [data-testid=pair-value]", "console-e2e")
	b.shot("04-create")
	b.click("#create-submit")
	id := b.value("the sandbox page", `document.querySelector('[data-testid=sandbox-page]')?.dataset.id`)
	var sb struct {
		Status     string            `json:"status"`
		TimeoutSec int               `json:"timeout_sec"`
		Metadata   map[string]string `json:"metadata"`
	}
	s.must(200, "GET", "/v1/sandboxes/"+id, hdr{"X-API-Key": key}, nil, &sb)
	if sb.Status != "running" || sb.TimeoutSec != 900 || sb.Metadata["purpose"] != "console-e2e" {
		t.Fatalf("the form made %+v", sb)
	}
	destroyed := false
	defer func() {
		if !destroyed {
			s.do("DELETE", "/v1/sandboxes/"+id, hdr{"X-API-Key": key}, nil)
		}
	}()
	b.waitStatus("running")

	// The terminal: type a command, read its output back off the screen.
	b.wait("the terminal to connect", `document.querySelector('#terminal-state')?.dataset.state === 'connected'`)
	if mode := b.value("the terminal mode", `document.querySelector('#terminal-state').dataset.mode`); mode != "pty" {
		t.Fatalf("the terminal runs in %q mode against a server with a pty endpoint", mode)
	}
	b.terminalRun("echo hi", "hi")
	b.shot("05-terminal")

	// The file browser: upload with progress, see it listed, and the bytes arrived.
	b.click("#tab-files")
	b.wait("the file list", `document.querySelector('#files-table tbody tr')`)
	local := filepath.Join(t.TempDir(), "console-upload.bin")
	data := make([]byte, 3<<20)
	_, _ = rand.Read(data)
	if err := os.WriteFile(local, data, 0o644); err != nil {
		t.Fatal(err)
	}
	b.run(chromedp.SetUploadFiles(chromedp.CSS("#file-upload"), []string{local}))
	b.wait("the upload to finish", `document.querySelector('[data-testid=upload-item][data-name="console-upload.bin"]')?.dataset.done === 'true'`)
	b.wait("the uploaded file in the list", `document.querySelector('[data-testid=file-entry][data-name="console-upload.bin"]')`)
	if row := b.text(`[data-testid=file-entry][data-name="console-upload.bin"]`); !strings.Contains(row, "3.0 MiB") {
		t.Fatalf("the uploaded file's row reads %q, want its size 3.0 MiB", row)
	}
	if pct := b.text(`[data-testid=upload-item] .upload-pct`); pct != "done" {
		t.Fatalf("the upload's progress reads %q", pct)
	}
	code, got := s.do("POST", "/v1/sandboxes/"+id+"/files/read", hdr{"X-API-Key": key}, map[string]string{"path": "/root/console-upload.bin"})
	if code != 200 || !bytes.Equal(got, data) {
		t.Fatalf("files/read of the upload = %d, %d bytes; want the 3 MiB sent", code, len(got))
	}
	b.shot("06-files")
	// Up to /, then back down into root/ by its link.
	b.click("#files-up")
	b.wait("the listing of /", `document.querySelector('#files-path').value === '/' && document.querySelector('[data-testid=file-entry][data-name=etc][data-type=directory]')`)
	b.click(`[data-testid=file-entry][data-name=root] .file-dir`)
	b.wait("the listing of /root again", `document.querySelector('#files-path').value === '/root' && document.querySelector('[data-testid=file-entry][data-name="console-upload.bin"]')`)

	// Metrics: a chart of the sandbox's points.
	b.click("#tab-metrics")
	b.wait("the metrics chart", `document.querySelector('#metrics-chart canvas') && +document.querySelector('#metrics-chart').dataset.points >= 5`)
	if cpu := b.text("#metric-cpu .tile-value"); !regexp.MustCompile(`^\d+\.\d %$`).MatchString(cpu) {
		t.Fatalf("the CPU tile reads %q", cpu)
	}
	b.shot("07-metrics")

	// The list shows it running, with its metadata.
	b.click("#nav-sandboxes")
	b.wait("the sandbox in the list", fmt.Sprintf(`document.querySelector('[data-testid=sandbox-row][data-id=%q]')?.dataset.status === 'running'`, id))
	if row := b.text(fmt.Sprintf(`[data-testid=sandbox-row][data-id=%q]`, id)); !strings.Contains(row, "purpose=console-e2e") {
		t.Fatalf("the sandbox's row reads %q", row)
	}
	b.shot("08-sandboxes")

	// Pause and resume from the sandbox's page; its terminal comes back.
	b.click(fmt.Sprintf(`[data-testid=sandbox-row][data-id=%q] [data-testid=sandbox-link]`, id))
	b.wait("the terminal to connect", `document.querySelector('#terminal-state')?.dataset.state === 'connected'`)
	b.click(`.page-header [data-testid=sb-pause]`)
	b.waitStatus("paused")
	s.must(200, "GET", "/v1/sandboxes/"+id, hdr{"X-API-Key": key}, nil, &sb)
	if sb.Status != "paused" {
		t.Fatalf("the API has the paused sandbox %s", sb.Status)
	}
	b.wait("the terminal to let go", `document.querySelector('#terminal-state')?.dataset.state !== 'connected'`)
	b.shot("09-paused")
	b.click(`.page-header [data-testid=sb-resume]`)
	b.waitStatus("running")
	b.wait("the terminal to reconnect", `document.querySelector('#terminal-state')?.dataset.state === 'connected'`)
	b.terminalRun("echo back-$((40+2))", "back-42")

	// The terminal's fallback for servers without the pty endpoint (forced
	// here): a line mode over the exec stream, each line one command.
	b.navigate("/sandboxes/" + id + "?terminal=exec")
	b.wait("the line-mode terminal", `(s => s && s.dataset.state === 'connected' && s.dataset.mode === 'exec')(document.querySelector('#terminal-state'))`)
	b.terminalRun("echo line-$((6*7))", "line-42")

	// Destroy: gone from the list, stopped in the API.
	b.navigate("/sandboxes/" + id)
	b.waitStatus("running")
	b.click(`.page-header [data-testid=sb-destroy]`)
	b.click("#confirm-ok")
	b.wait("the list without the sandbox", `location.pathname === '/sandboxes' && document.querySelector('#sandboxes-empty')`)
	s.must(200, "GET", "/v1/sandboxes/"+id, hdr{"X-API-Key": key}, nil, &sb)
	if sb.Status != "stopped" {
		t.Fatalf("after destroy the API has the sandbox %s", sb.Status)
	}
	destroyed = true

	// Snapshot: a second sandbox (made through the API) becomes a template
	// from its page; the templates page lists it beside the base, and
	// deletes it.
	var sb2 sandbox
	s.must(201, "POST", "/v1/sandboxes", hdr{"X-API-Key": key}, map[string]any{"template": "minimal"}, &sb2)
	defer s.do("DELETE", "/v1/sandboxes/"+sb2.ID, hdr{"X-API-Key": key}, nil) // consumed by the snapshot unless it failed
	b.navigate("/sandboxes/" + sb2.ID)
	b.waitStatus("running")
	b.click(".page-header [data-testid=sb-snapshot]")
	b.typeInto("#snapshot-name", "console-snap")
	b.click("#snapshot-submit")
	b.wait("the snapshot in the templates", `location.pathname === '/snapshots' && document.querySelector('[data-testid=template-row][data-name=console-snap][data-type=snapshot]')`)
	if row := b.text(`[data-testid=template-row][data-name=console-snap]`); !strings.Contains(row, "1 vCPU · 512 MiB") {
		t.Fatalf("the snapshot's row reads %q", row)
	}
	b.wait("the base template", `document.querySelector('[data-testid=template-row][data-name=minimal][data-type=base]')`)
	b.shot("10-snapshots")
	b.click(`[data-testid=template-row][data-name=console-snap] [data-testid=template-delete]`)
	b.click("#confirm-ok")
	b.wait("the snapshot gone", `document.querySelector('#snapshots-empty') && !document.querySelector('[data-testid=template-row][data-name=console-snap]')`)
	var templates []struct {
		Name string `json:"name"`
	}
	s.must(200, "GET", "/v1/snapshots", hdr{"X-API-Key": key}, nil, &templates)
	for _, tpl := range templates {
		if tpl.Name == "console-snap" {
			t.Fatal("the API still lists the snapshot the console deleted")
		}
	}

	// The API reference, rendered from the server's own /openapi.yaml.
	b.click("#nav-docs")
	b.wait("the operations", `document.querySelectorAll('#docs .opblock').length >= 30`)
	ops := b.value("the operations", `[...document.querySelectorAll('#docs .opblock-summary-path')].map(e => e.textContent).join('\n')`)
	for _, p := range []string{"/v1/auth/signup", "/v1/sandboxes/{id}/pty", "/v1/snapshots/{name}"} {
		if !strings.Contains(ops, p) {
			t.Fatalf("the API reference lists no %s:\n%s", p, ops)
		}
	}
	b.shot("11-docs")

	b.checkConsole()
	t.Logf("the console flow took %v; screenshots in %s", time.Since(start).Round(time.Second), shots)
}

// requireChromium finds the system Chromium: a skip without it, unless
// the VM tests are required.
func requireChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(envRequireVMs) == "1" {
		t.Fatal("no chromium: apt-get install chromium (the console's browser test needs it)")
	}
	t.Skip("no chromium installed")
	return ""
}

// requireConsoleBuilt checks that the binary under test was built with
// the console's bundle (scripts/lib.sh's build_console), not the page
// saying how to build it.
func requireConsoleBuilt(t *testing.T, s *server) {
	t.Helper()
	res, err := http.Get(s.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode == 200 && strings.Contains(string(body), `<div id="app">`) {
		return
	}
	why := fmt.Sprintf("the web console is not built into wrenn (run build_console from scripts/lib.sh): GET / = %d %.200s", res.StatusCode, body)
	if os.Getenv(envRequireVMs) == "1" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// apiMessage returns the error envelope's message of a request that fails.
func apiMessage(t *testing.T, s *server, method, path, body string) string {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil || e.Error.Message == "" {
		t.Fatalf("%s %s = %d, not an error envelope (%v)", method, path, res.StatusCode, err)
	}
	return e.Error.Message
}

// browser is a headless Chromium tab on the console.
type browser struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string

	mu       sync.Mutex
	problems []string // exceptions and security errors the page logged
}

func newBrowser(t *testing.T, chrome, base, shots string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox, // root, in CI
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("lang", "en-US"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 5*time.Minute)
	t.Cleanup(func() {
		cancelTime()
		cancelTab()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx, base: base, shots: shots}
	if _, err := chromedp.Call(ctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// Screenshots of the page itself, 1280x800, whatever the window's frame takes.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("set the viewport: %v", err)
	}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	entries := chromedp.Events(ctx, log.EntryAdded)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			b.problem("exception: " + ev.ExceptionDetails.Text + " " + describeException(ev.ExceptionDetails))
		}
	}()
	go func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			// Failed requests (the wrong password's 401) are expected;
			// a Content-Security-Policy refusal or a script error is not.
			if ev.Entry.Source == log.EntrySourceSecurity || ev.Entry.Source == log.EntrySourceJavascript {
				b.problem(string(ev.Entry.Source) + ": " + ev.Entry.Text)
			}
		}
	}()
	return b
}

func describeException(d *runtime.ExceptionDetails) string {
	if d.Exception != nil && d.Exception.Description != "" {
		return d.Exception.Description
	}
	return ""
}

func (b *browser) problem(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, s)
}

// checkConsole fails the test if the page threw or broke its policy.
func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		b.t.Fatalf("the page logged:\n%s", strings.Join(b.problems, "\n"))
	}
}

// fail saves what the page showed and ends the test.
func (b *browser) fail(format string, args ...any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
		_ = os.WriteFile(filepath.Join(b.shots, "failure.png"), png, 0o644)
	}
	page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
	b.mu.Lock()
	problems := strings.Join(b.problems, "\n")
	b.mu.Unlock()
	b.t.Fatalf("%s\npage (screenshot failure.png in %s):\n%s\nlogged:\n%s", fmt.Sprintf(format, args...), b.shots, page, problems)
}

func (b *browser) run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail("browser: %v", err)
	}
}

func (b *browser) navigate(path string) {
	b.t.Helper()
	b.run(chromedp.Navigate(b.base + path))
}

func (b *browser) click(sel string) {
	b.t.Helper()
	b.run(chromedp.Click(chromedp.CSS(sel)))
}

func (b *browser) typeInto(sel, text string) {
	b.t.Helper()
	b.run(chromedp.SendKeys(chromedp.CSS(sel), text))
}

// clear empties a field as a user deleting its text would: with an input
// event, which the page's state follows.
func (b *browser) clear(sel string) {
	b.t.Helper()
	b.wait("to clear "+sel, fmt.Sprintf(`(e => {
		if (!e) return false;
		e.value = '';
		e.dispatchEvent(new Event('input', {bubbles: true}));
		return true;
	})(document.querySelector(%q))`, sel))
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return strings.TrimSpace(b.value("text of "+sel, fmt.Sprintf(`document.querySelector(%q)?.innerText`, sel)))
}

// value waits up to a minute for js to give a non-empty string, and returns it.
func (b *browser) value(what, js string) string {
	b.t.Helper()
	var v string
	b.waitFor(what, time.Minute, func(ctx context.Context) (bool, error) {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[*string](js))
		if err != nil || s == nil || *s == "" {
			return false, err
		}
		v = *s
		return true, nil
	})
	return v
}

// wait waits up to a minute for js to be truthy.
func (b *browser) wait(what, js string) {
	b.t.Helper()
	b.waitFor(what, time.Minute, func(ctx context.Context) (bool, error) {
		return chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+js+`)`))
	})
}

func (b *browser) waitFor(what string, timeout time.Duration, ok func(context.Context) (bool, error)) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		done, err := ok(ctx)
		cancel()
		if done {
			return
		}
		last = err
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			b.fail("waited %v for %s (last error: %v)", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitStatus waits for the sandbox page's status badge to read status,
// with no action in flight.
func (b *browser) waitStatus(status string) {
	b.t.Helper()
	b.wait("status "+status, fmt.Sprintf(`(() => {
		const el = document.querySelector('.page-header [data-testid=sandbox-status]');
		return el && el.dataset.status === %q && el.innerText.trim() === %q;
	})()`, status, status))
}

// terminalRun types cmd into the terminal and waits for a line of its
// output that reads want, on the screen xterm.js drew. The text goes in
// as a keyboard's input events would bring it, and Enter as a key press.
func (b *browser) terminalRun(cmd, want string) {
	b.t.Helper()
	b.wait("a prompt on the terminal", `(() => {
		const rows = document.querySelector('#terminal .xterm-rows');
		return rows && [...rows.children].some(r => /[#$]$/.test(r.textContent.replace(/\u00a0/g, ' ').trim()));
	})()`)
	b.click("#terminal")
	b.wait("the terminal's focus", `(t => t && (t.focus(), document.activeElement === t))(document.querySelector('#terminal .xterm-helper-textarea'))`)
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	enter := input.DispatchKeyEventParams{Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13}
	down, up := enter, enter
	down.Type, up.Type = input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp
	if _, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: cmd}); err != nil {
		b.fail("type %q: %v", cmd, err)
	}
	for _, ev := range []input.DispatchKeyEventParams{down, up} {
		if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, ev); err != nil {
			b.fail("press Enter: %v", err)
		}
	}
	b.wait(fmt.Sprintf("%q on the terminal", want), fmt.Sprintf(`(() => {
		const rows = document.querySelector('#terminal .xterm-rows');
		return rows && [...rows.children].some(r => r.textContent.replace(/\u00a0/g, ' ').trim() === %q);
	})()`, want))
}

// shot saves the viewport as name.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	// Let the last render and any transition settle.
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.fail("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
