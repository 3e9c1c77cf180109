package client_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/wrennhq/wrenn/client"
)

// A sandbox, a command in it, and its end.
func Example() {
	ctx := context.Background()
	c, err := client.New("http://localhost:8080", client.WithAPIKey(os.Getenv("WRENN_API_KEY")))
	if err != nil {
		panic(err)
	}
	sb, err := c.CreateSandbox(ctx, client.CreateSandboxRequest{Template: "minimal"})
	if err != nil {
		panic(err)
	}
	defer c.DestroySandbox(context.WithoutCancel(ctx), sb.ID)
	res, err := c.Exec(ctx, sb.ID, client.Command("uname", "-a"))
	if err != nil {
		panic(err)
	}
	fmt.Printf("exit %d: %s", res.ExitCode, res.Stdout)
}

// Output as a command prints it, and its exit code.
func ExampleClient_ExecStream() {
	ctx := context.Background()
	c, _ := client.New("http://localhost:8080", client.WithAPIKey(os.Getenv("WRENN_API_KEY")))
	st, err := c.ExecStream(ctx, "sb-0123abcd", client.Command("sh", "-c", "make test"))
	if err != nil {
		panic(err)
	}
	defer st.Close()
	for ev, err := range st.Events() {
		if err != nil {
			panic(err)
		}
		switch ev.Type {
		case client.EventStdout:
			os.Stdout.Write(ev.Data)
		case client.EventStderr:
			os.Stderr.Write(ev.Data)
		case client.EventExit:
			fmt.Println("exit", ev.ExitCode)
		}
	}
}

// An interactive terminal: type a line, read until it is echoed.
func ExampleClient_Terminal() {
	ctx := context.Background()
	c, _ := client.New("http://localhost:8080", client.WithAPIKey(os.Getenv("WRENN_API_KEY")))
	term, err := c.Terminal(ctx, "sb-0123abcd", client.TerminalOptions{Cols: 120, Rows: 40})
	if err != nil {
		panic(err)
	}
	defer term.Close() // detaches; term.Tag reconnects with ConnectTerminal
	io.WriteString(term, "echo hi\n")
	var out strings.Builder
	for ev, err := range term.Events() {
		if err != nil {
			panic(err)
		}
		out.Write(ev.Data)
		if strings.Contains(out.String(), "hi\r\n") {
			break
		}
	}
}

// A large file uploaded from disk without holding it in memory.
func ExampleClient_UploadFile() {
	ctx := context.Background()
	c, _ := client.New("http://localhost:8080", client.WithAPIKey(os.Getenv("WRENN_API_KEY")))
	f, err := os.Open("dataset.tar")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	if err := c.UploadFile(ctx, "sb-0123abcd", "/root/dataset.tar", f); err != nil {
		panic(err)
	}
}
