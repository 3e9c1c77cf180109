// Command quickstart is the README's Go SDK example: a sandbox, a command
// in it, a file written and read back, a streamed command, and the
// sandbox's end. Run it from a checkout against a server:
//
//	WRENN_URL=http://localhost:8080 WRENN_API_KEY=wrn_... go run ./examples/quickstart
package main

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"os"

	"github.com/wrennhq/wrenn/client"
)

func main() {
	ctx := context.Background()
	c, err := client.New(cmp.Or(os.Getenv("WRENN_URL"), "http://localhost:8080"),
		client.WithAPIKey(os.Getenv("WRENN_API_KEY")))
	if err != nil {
		log.Fatal(err)
	}
	sb, err := c.CreateSandbox(ctx, client.CreateSandboxRequest{Template: "minimal"})
	if err != nil {
		log.Fatal(err) // the API's own words, e.g. "invalid API key"
	}
	defer c.DestroySandbox(context.WithoutCancel(ctx), sb.ID)

	res, err := c.Exec(ctx, sb.ID, client.Command("python3", "-c", "print(6*7)"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("exit %d: %s", res.ExitCode, res.Stdout) // exit 0: 42

	if err := c.WriteFile(ctx, sb.ID, "/root/hello.txt", []byte("hello from Go\n")); err != nil {
		log.Fatal(err)
	}
	b, err := c.ReadFileBytes(ctx, sb.ID, "/root/hello.txt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("read back: %s", b)

	st, err := c.ExecStream(ctx, sb.ID, client.Command("sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.2; done"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	for ev, err := range st.Events() { // output as the command prints it
		if err != nil {
			log.Fatal(err)
		}
		switch ev.Type {
		case client.EventStdout:
			fmt.Printf("%s", ev.Data)
		case client.EventExit:
			fmt.Println("stream exit", ev.ExitCode)
		}
	}
}
