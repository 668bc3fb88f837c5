import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CouponsService } from "../gen/creditmeter/coupons/v1/coupons_pb";
import { CreditsService, TransactionKind } from "../gen/creditmeter/credits/v1/credits_pb";
import { ApiError, call, configureClient, httpCall, lines, stream } from "./client";

function respond(status: number, body: unknown): Response {
  return new Response(typeof body === "string" ? body : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

afterEach(() => {
  configureClient({ token: () => null, onUnauthenticated: () => undefined, fetch: globalThis.fetch, baseUrl: "" });
});

describe("httpCall (from the google.api.http rules in the protos)", () => {
  it("puts a GET's fields in the query with proto names, enums by name, int64 and times as strings", () => {
    const req = httpCall(CreditsService.method.listTransactions, {
      userId: "alice",
      pageSize: 25,
      kind: TransactionKind.REFUND,
      startTime: timestampFromDate(new Date("2026-01-02T03:04:05Z")),
    });
    expect(req.verb).toBe("GET");
    const url = new URL(req.url, "http://x");
    expect(url.pathname).toBe("/api/v1/credits/transactions");
    expect(url.searchParams.get("user_id")).toBe("alice");
    expect(url.searchParams.get("page_size")).toBe("25");
    expect(url.searchParams.get("kind")).toMatch(/REFUND$/);
    expect(url.searchParams.get("start_time")).toBe("2026-01-02T03:04:05Z");
    expect(req.body).toBeUndefined();
  });

  it("leaves default values out of the query", () => {
    const req = httpCall(CreditsService.method.getBalance, {});
    expect(req.url).toBe("/api/v1/credits/balance");
  });

  it("sends a POST's fields as the JSON body, int64 nanos as exact strings", () => {
    const req = httpCall(CreditsService.method.allocate, {
      userId: "bob",
      amountNanos: 9_007_199_254_740_993n,
      reason: "goodwill",
      requestId: "r-1",
    });
    expect(req.verb).toBe("POST");
    expect(req.url).toBe("/api/v1/credits/allocate");
    expect(JSON.parse(req.body ?? "")).toEqual({
      user_id: "bob",
      amount_nanos: "9007199254740993",
      reason: "goodwill",
      request_id: "r-1",
    });
  });

  it("fills path parameters and leaves them out of the body", () => {
    const req = httpCall(CouponsService.method.disableCoupon, { code: "SPRING/25", reason: "ended" });
    expect(req.url).toBe("/api/v1/coupons/SPRING%2F25/disable");
    const body = JSON.parse(req.body ?? "{}") as Record<string, unknown>;
    expect(body.code).toBeUndefined();
    expect(body.reason).toBe("ended");
  });
});

describe("call", () => {
  it("sends the bearer token and parses int64 into BigInt", async () => {
    const fetch = vi.fn((_url: RequestInfo | URL, init?: RequestInit) => {
      expect(new Headers(init?.headers).get("authorization")).toBe("Bearer tok");
      return Promise.resolve(respond(200, { user_id: "alice", balance_nanos: "9223372036854775807", tier: "trial" }));
    });
    configureClient({ fetch, token: () => "tok" });
    const balance = await call(CreditsService.method.getBalance, {});
    expect(balance.balanceNanos).toBe(9_223_372_036_854_775_807n);
    expect(balance.userId).toBe("alice");
    expect(fetch).toHaveBeenCalledOnce();
  });

  it("turns a gateway error body into an ApiError with the ErrorInfo reason", async () => {
    const body = {
      code: 9,
      status: "FAILED_PRECONDITION",
      message: "this coupon has expired",
      details: [
        { "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "COUPON_EXPIRED", domain: "coupons", metadata: { code: "OLD" } },
      ],
    };
    configureClient({ fetch: () => Promise.resolve(respond(400, body)) });
    const error = await call(CouponsService.method.redeemCoupon, { code: "OLD", requestId: "x" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    const apiError = error as ApiError;
    expect([apiError.httpStatus, apiError.reason, apiError.message]).toEqual([400, "COUPON_EXPIRED", "this coupon has expired"]);
    expect(apiError.metadata.code).toBe("OLD");
  });

  it("reports a 401 so the app can send the user to sign in", async () => {
    const onUnauthenticated = vi.fn();
    configureClient({
      onUnauthenticated,
      fetch: () => Promise.resolve(respond(401, { status: "UNAUTHENTICATED", message: "Jwt is expired" })),
    });
    await expect(call(CreditsService.method.getBalance, {})).rejects.toBeInstanceOf(ApiError);
    expect(onUnauthenticated).toHaveBeenCalledOnce();
  });

  it("says the server is unreachable instead of throwing a TypeError", async () => {
    configureClient({
      fetch: () => Promise.reject(new TypeError("Failed to fetch")),
    });
    await expect(call(CreditsService.method.getBalance, {})).rejects.toMatchObject({ reason: "NETWORK_ERROR" });
  });
});

function chunked(parts: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const part of parts) controller.enqueue(encoder.encode(part));
      controller.close();
    },
  });
}

describe("stream (newline-delimited JSON)", () => {
  it("splits lines across chunk boundaries", async () => {
    const got: string[] = [];
    for await (const line of lines(chunked(['{"a":', '1}\n{"b"', ":2}\n\n", '{"c":3}']))) got.push(line);
    expect(got).toEqual(['{"a":1}', '{"b":2}', '{"c":3}']);
  });

  it("yields each balance as it arrives", async () => {
    const body = chunked([
      '{"balance":{"user_id":"alice","balance_nanos":"1000"}}\n',
      '{"balance":{"user_id":"alice","balance_nanos":"750"}}\n',
    ]);
    configureClient({ fetch: () => Promise.resolve(new Response(body, { status: 200 })) });
    const seen: bigint[] = [];
    for await (const message of stream(CreditsService.method.watchBalance, {})) {
      seen.push(message.balance?.balanceNanos ?? -1n);
    }
    expect(seen).toEqual([1000n, 750n]);
  });
});
