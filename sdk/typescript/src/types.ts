// The SDK's types, every one derived from the contract's generated types
// (schema.ts, from api/openapi.yaml by `npm run gen`), so that a client that
// disagrees with the contract does not compile.
import type { components, operations, paths } from "./schema.js";

type Schemas = components["schemas"];

/** What signup and login return: a JWT (valid 6 hours) and the account. */
export type AuthResponse = Schemas["AuthResponse"];
/** One of a team's API keys; `key`, the plaintext, only when just created. */
export type APIKey = Schemas["APIKeyResponse"];
/** A sandbox as the API reports it. */
export type SandboxInfo = Schemas["Sandbox"];
/** Where a sandbox is in its life. */
export type SandboxStatus = NonNullable<SandboxInfo["status"]>;
/** What a create asks for; every field optional, the server's defaults otherwise. */
export type CreateSandboxRequest = Schemas["CreateSandboxRequest"];
/** A sandbox's egress exceptions. */
export type NetworkPolicy = Schemas["NetworkPolicy"];
/** A base image or a team's snapshot. */
export type Template = Schemas["Template"];
export type TemplateType = NonNullable<Template["type"]>;
/** What a snapshot asks for; `overwrite` replaces a snapshot of the same name. */
export type CreateSnapshotRequest = Schemas["CreateSnapshotRequest"] & {
  overwrite?: boolean;
};
/** A command: `cmd` alone runs through /bin/sh -c, with `args` directly. */
export type ExecRequest = Omit<Schemas["ExecRequest"], "background" | "tag">;
/** The blocking exec's answer as the API words it. */
export type ExecResponse = Schemas["ExecResponse"];
/** A background process as started or listed. */
export type Process = Schemas["ProcessEntry"];
export type BackgroundExecResponse = Schemas["BackgroundExecResponse"];
/** A file, directory or symbolic link in a sandbox. */
export type FileEntry = Schemas["FileEntry"];
export type SandboxMetrics = Schemas["SandboxMetrics"];
export type MetricPoint = Schemas["MetricPoint"];
export type MetricsRange = NonNullable<
  NonNullable<operations["getSandboxMetrics"]["parameters"]["query"]>["range"]
>;
export type SandboxStats = Schemas["SandboxStats"];
export type StatsRange = NonNullable<
  NonNullable<operations["getSandboxStats"]["parameters"]["query"]>["range"]
>;
export type Usage = Schemas["UsageResponse"];
export type Signal = NonNullable<
  NonNullable<operations["killProcess"]["parameters"]["query"]>["signal"]
>;
/** A terminal's start message, less its type. */
export type TerminalOptions = Omit<
  Schemas["PtyClientMessage"],
  "type" | "tag" | "data"
>;
export type PtyClientMessage = Schemas["PtyClientMessage"];
/** A machine in the host registry. */
export type Host = Schemas["Host"];
export type CreateHostRequest = Schemas["CreateHostRequest"];
/** A host with its one-time registration token. */
export type HostToken = Schemas["CreateHostResponse"];
export type HostDeletePreview = Schemas["HostDeletePreview"];
export type RegisterHostRequest = Schemas["RegisterHostRequest"];
/** A registration's answer: the host, now online, and its agent's certificate. */
export type RegisteredHost = Schemas["RegisterHostResponse"];
export type HostCertificate = Schemas["HostCertificate"];
export type PtyServerMessage = Schemas["PtyServerMessage"];

/** Options every call takes. */
export interface CallOptions {
  /** Aborts the request (or closes the stream). */
  signal?: AbortSignal;
}

// The typed caller: an operation is named by its path template and method,
// exactly as the contract has them; its path and query parameters, request
// body and answer are the contract's.

export type Method = "get" | "post" | "delete";
export type Path = keyof paths;
export type MethodOf<P extends Path> = {
  [M in Method]: paths[P][M] extends { responses: unknown } ? M : never;
}[Method];
export type Operation<P extends Path, M extends MethodOf<P>> = paths[P][M];

type ParamsOf<O, K extends string> = O extends { parameters: infer Ps }
  ? K extends keyof Ps
    ? Ps[K]
    : never
  : never;
/** The operation's path parameters. */
export type PathParams<O> = ParamsOf<O, "path">;
/** The operation's query parameters. */
export type QueryParams<O> = ParamsOf<O, "query">;
/** The operation's JSON request body, never if it takes none. */
export type JsonBody<O> = O extends {
  requestBody: { content: { "application/json": infer B } };
}
  ? B
  : never;
type Success = 200 | 201 | 202 | 204;
/** The JSON of the operation's 2xx answers; undefined for a 204. */
export type JsonAnswer<O> = O extends { responses: infer R }
  ? {
      [S in keyof R & Success]: R[S] extends {
        content: { "application/json": infer B };
      }
        ? B
        : undefined;
    }[keyof R & Success]
  : never;
