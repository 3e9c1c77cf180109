// Package client is the Go SDK of Wrenn's public API (api/openapi.yaml):
// a typed method on Client for every operation, the WebSocket streams
// (exec, background processes, terminals, directory watches) as types
// with Recv and an iterator, a context on every call, and the API's error
// envelope as one error type, *Error.
//
// It imports only the standard library and github.com/coder/websocket, so
// that the wrenn CLI, the console's server side and other programs reach
// the API through it and nothing else.
//
//	c, err := client.New("http://localhost:8080", client.WithAPIKey(key))
//	if err != nil {
//		return err
//	}
//	sb, err := c.CreateSandbox(ctx, client.CreateSandboxRequest{Template: "minimal"})
//	if err != nil {
//		return err
//	}
//	defer c.DestroySandbox(context.WithoutCancel(ctx), sb.ID)
//	res, err := c.Exec(ctx, sb.ID, client.Command("echo", "hello"))
//	if err != nil {
//		return err
//	}
//	fmt.Printf("%s", res.Stdout) // hello
//
//	st, err := c.ExecStream(ctx, sb.ID, client.Command("sh", "-c", "for i in 1 2 3; do echo $i; sleep 1; done"))
//	if err != nil {
//		return err
//	}
//	defer st.Close()
//	for ev, err := range st.Events() {
//		if err != nil {
//			return err
//		}
//		if ev.Type == client.EventStdout {
//			os.Stdout.Write(ev.Data)
//		}
//	}
//
// Errors the API answers with are *Error values; match on their Code
// (client.IsNotFound(err), client.ErrorCode(err) == client.CodeConflict),
// never on their message.
package client
