// Compile-time checks that the SDK's types are the contract's: tsc fails
// this file (npm run check) if any of these stop being errors, that is if
// the typed caller stops checking paths, methods, bodies or parameters.
import type { CreateSandboxRequest, ExecRequest, Transport } from "../src/index.js";

declare const t: Transport;

export async function mistakes(): Promise<void> {
  // @ts-expect-error: no such path in the contract
  await t.call("get", "/v1/sandbox", {});
  // @ts-expect-error: no such method on the path
  await t.call("delete", "/v1/auth/login", {});
  // @ts-expect-error: a body the operation does not take
  await t.call("post", "/v1/auth/login", { body: { mail: "a@b.c", password: "x" } });
  // @ts-expect-error: a missing path parameter
  await t.call("get", "/v1/sandboxes/{id}", {});
  // @ts-expect-error: a query parameter outside its enum
  await t.call("get", "/v1/sandboxes/stats", { query: { range: "2d" } });
  const sb = await t.call("get", "/v1/sandboxes/{id}", { path: { id: "sb-1" } });
  // @ts-expect-error: a field the Sandbox schema does not have
  void sb.memory;
  // @ts-expect-error: ExecRequest requires cmd
  const req: ExecRequest = { args: [] };
  // @ts-expect-error: vcpus is an integer
  const create: CreateSandboxRequest = { vcpus: "2" };
  void req;
  void create;
}
