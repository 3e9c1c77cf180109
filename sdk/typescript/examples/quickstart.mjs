// The README's example: node examples/quickstart.mjs with WRENN_URL and
// WRENN_API_KEY set. tests/e2e/tssdk_test.go runs it against a real server.
import { Wrenn } from "@wrenn/sdk";

const wrenn = new Wrenn({ baseUrl: process.env.WRENN_URL ?? "http://localhost:8080", apiKey: process.env.WRENN_API_KEY });
const sb = await wrenn.createSandbox({ template: "minimal" });
try {
  const res = await sb.exec(`python3 -c "print(6*7)"`);
  console.log(res.stdout.trim(), res.exitCode); // 42 0

  const st = sb.execStream("for i in 1 2 3; do echo tick $i; sleep 0.2; done; exit 3");
  for await (const ev of st) {
    if (ev.type === "stdout") process.stdout.write(ev.text); // as it is printed
  }
  console.log("exit", st.exitCode); // exit 3

  await sb.files.write("/root/hello.txt", "hello from TypeScript\n");
  process.stdout.write(await sb.files.readText("/root/hello.txt"));
  console.log((await sb.files.list("/root")).map((e) => e.name));
} finally {
  await sb.destroy();
}
