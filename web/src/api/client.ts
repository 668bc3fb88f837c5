// The one fetch wrapper: calls any RPC of our protos through the gateway's REST
// mapping. The URL, verb and body come from each method's google.api.http rule,
// read from the descriptors that protoc-gen-es generated from protos/ — so the
// client cannot drift from the contract. Messages travel as proto3 JSON with
// proto field names (the gateway's print options), int64 as BigInt.
import {
  create,
  fromJson,
  getOption,
  toJson,
  type DescMessage,
  type DescMethod,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  type JsonObject,
  type JsonValue,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { http } from "../gen/google/api/annotations_pb";

/** An error the server (or the gateway) returned, with its machine-readable ErrorInfo reason. */
export class ApiError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly status: string,
    readonly reason: string,
    message: string,
    readonly metadata: Record<string, string> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface ClientConfig {
  /** Returns the current bearer token, or null when signed out. */
  token: () => string | null;
  /** Called on any 401 so the app can send the user to sign in (and back). */
  onUnauthenticated: () => void;
  fetch: typeof fetch;
  baseUrl: string;
}

const config: ClientConfig = {
  token: () => null,
  onUnauthenticated: () => undefined,
  fetch: (...args) => globalThis.fetch(...args),
  baseUrl: "",
};

export function configureClient(changes: Partial<ClientConfig>): void {
  Object.assign(config, changes);
}

interface HttpCall {
  verb: string;
  url: string;
  body?: string;
}

function appendQuery(params: URLSearchParams, prefix: string, value: JsonValue): void {
  if (value === null) return;
  if (Array.isArray(value)) {
    for (const item of value) appendQuery(params, prefix, item);
  } else if (typeof value === "object") {
    for (const [key, inner] of Object.entries(value)) appendQuery(params, `${prefix}.${key}`, inner);
  } else {
    params.append(prefix, String(value));
  }
}

/** The HTTP request for one RPC call, per its google.api.http rule. Exported for tests. */
export function httpCall<I extends DescMessage>(method: DescMethod & { input: I }, input: MessageInitShape<I>): HttpCall {
  const rule = getOption(method, http);
  const pattern = rule.pattern;
  if (pattern.case === undefined || pattern.case === "custom") {
    throw new Error(`${method.parent.typeName}.${method.name} has no REST mapping`);
  }
  const verb = pattern.case.toUpperCase();
  const message = create(method.input, input);
  const json = toJson(method.input, message, { useProtoFieldName: true }) as JsonObject;
  const path = pattern.value.replace(/\{([a-z0-9_.]+)\}/g, (_, field: string) => {
    const value = json[field];
    delete json[field];
    return encodeURIComponent(value === undefined || value === null ? "" : typeof value === "string" ? value : JSON.stringify(value));
  });
  let body: string | undefined;
  let query: JsonObject = json;
  if (rule.body === "*") {
    body = JSON.stringify(json);
    query = {};
  } else if (rule.body) {
    body = JSON.stringify(json[rule.body] ?? {});
    const { [rule.body]: _omitted, ...rest } = json;
    void _omitted;
    query = rest;
  }
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) appendQuery(params, key, value);
  const qs = params.toString();
  return { verb, url: config.baseUrl + path + (qs ? `?${qs}` : ""), body };
}

async function errorFrom(response: Response): Promise<ApiError> {
  let status = "UNKNOWN";
  let reason = "";
  let message = `The server answered ${response.status} ${response.statusText}`.trim();
  let metadata: Record<string, string> = {};
  try {
    const body = (await response.json()) as {
      status?: string;
      message?: string;
      details?: { "@type"?: string; reason?: string; metadata?: Record<string, string> }[];
    };
    status = body.status ?? status;
    message = body.message || message;
    const info = body.details?.find((d) => d["@type"]?.endsWith("google.rpc.ErrorInfo"));
    reason = info?.reason ?? "";
    metadata = info?.metadata ?? {};
  } catch {
    // Not JSON (a proxy in between): keep the HTTP status as the message.
  }
  return new ApiError(response.status, status, reason, message, metadata);
}

async function send(call: HttpCall, signal?: AbortSignal): Promise<Response> {
  const headers: Record<string, string> = { accept: "application/json" };
  const token = config.token();
  if (token) headers.authorization = `Bearer ${token}`;
  if (call.body !== undefined) headers["content-type"] = "application/json";
  let response: Response;
  try {
    response = await config.fetch(call.url, { method: call.verb, headers, body: call.body, signal });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new ApiError(0, "UNAVAILABLE", "NETWORK_ERROR", "The server could not be reached. Check your connection.");
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401) config.onUnauthenticated();
    throw error;
  }
  return response;
}

/** Calls a unary RPC and returns its typed response. */
export async function call<I extends DescMessage, O extends DescMessage>(
  method: DescMethodUnary<I, O>,
  input: MessageInitShape<I>,
  signal?: AbortSignal,
): Promise<MessageShape<O>> {
  const response = await send(httpCall(method, input), signal);
  const json = (await response.json()) as JsonValue;
  return fromJson(method.output, json, { ignoreUnknownFields: true });
}

/** Splits a byte stream into lines (the gateway's newline-delimited JSON). Exported for tests. */
export async function* lines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let newline = buffer.indexOf("\n");
      while (newline >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line) yield line;
        newline = buffer.indexOf("\n");
      }
    }
    const rest = (buffer + decoder.decode()).trim();
    if (rest) yield rest;
  } finally {
    reader.releaseLock();
  }
}

/** Reads a server-streaming RPC: each message as it arrives, until the stream ends or `signal` aborts. */
export async function* stream<I extends DescMessage, O extends DescMessage>(
  method: DescMethodServerStreaming<I, O>,
  input: MessageInitShape<I>,
  signal?: AbortSignal,
): AsyncGenerator<MessageShape<O>> {
  const response = await send(httpCall(method, input), signal);
  if (!response.body) return;
  for await (const line of lines(response.body)) {
    // Envoy may wrap a mid-stream error as a JSON status object; surface it.
    const parsed = JSON.parse(line) as JsonValue;
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed) && "code" in parsed && "message" in parsed) {
      const details = parsed.details;
      const first = Array.isArray(details) ? details[0] : undefined;
      const text = (value: JsonValue | undefined, fallback: string) => (typeof value === "string" ? value : fallback);
      const reason = first && typeof first === "object" && !Array.isArray(first) ? text(first.reason, "") : "";
      throw new ApiError(500, text(parsed.status, "UNKNOWN"), reason, text(parsed.message, "the stream failed"));
    }
    yield fromJson(method.output, parsed, { ignoreUnknownFields: true });
  }
}

/** A fresh idempotency key for one submitted form (AIP-155): a double submit moves money once. */
export function requestId(): string {
  return crypto.randomUUID();
}
