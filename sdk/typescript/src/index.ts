// @wrenn/sdk: a typed client of every operation of the Wrenn API
// (api/openapi.yaml), for Node 20 and later and for browsers.
export { Wrenn, type ListSandboxesOptions } from "./client.js";
export { WrennError, ErrorCode } from "./error.js";
export { Files, type UploadData } from "./files.js";
export { Hosts } from "./hosts.js";
export type { Transport, WrennOptions, WebSocketConstructorLike } from "./http.js";
export { Sandbox, type Command, type ExecResult } from "./sandbox.js";
export { EventStream, ExecStream, ProcessStream, type ExecEvent, type StreamResult } from "./stream.js";
export { Terminal, type TerminalEvent } from "./terminal.js";
export { Watch, type FileEvent } from "./watch.js";
export type * from "./types.js";
export type { components, operations, paths } from "./schema.js";
