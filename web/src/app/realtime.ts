// Keeps the signed-in view's balance live: one WatchBalance stream per open app
// (not per panel), read with fetch streaming from the gateway's newline-delimited
// JSON. Each message replaces the cached balance, and the usage and transaction
// queries are marked stale so open pages refetch them once. The stream reconnects
// with a growing delay when it drops; it never polls.
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { ApiError, stream } from "../api/client";
import { CreditsService } from "../gen/creditmeter/credits/v1/credits_pb";
import { keys } from "../features/overview/queries";

export type LiveState = "connecting" | "live" | "offline";

export function useLiveBalance(user: string, enabled: boolean): LiveState {
  const client = useQueryClient();
  const [state, setState] = useState<LiveState>("connecting");

  useEffect(() => {
    if (!enabled) return;
    const abort = new AbortController();
    let delay = 1000;
    let first = true;
    let lastBalance: bigint | null = null;
    void (async () => {
      while (!abort.signal.aborted) {
        try {
          setState("connecting");
          for await (const message of stream(CreditsService.method.watchBalance, { userId: user }, abort.signal)) {
            if (!message.balance) continue;
            setState("live");
            delay = 1000;
            client.setQueryData(keys.balance(user), message.balance);
            const moved = lastBalance !== null && lastBalance !== message.balance.balanceNanos;
            if (moved || (!first && lastBalance === null)) {
              const refresh = () => {
                void client.invalidateQueries({ queryKey: ["usage", user] });
                void client.invalidateQueries({ queryKey: ["transactions", user] });
              };
              refresh();
              // Metering settles its own report rows just after the ledger commits the charge
              // that woke us; one more refresh shortly after picks those up.
              setTimeout(refresh, 1500);
            }
            first = false;
            lastBalance = message.balance.balanceNanos;
          }
        } catch (error) {
          if (abort.signal.aborted) return;
          // Signed out or not allowed: retrying will not help.
          if (error instanceof ApiError && (error.httpStatus === 401 || error.httpStatus === 403)) {
            setState("offline");
            return;
          }
        }
        if (abort.signal.aborted) return;
        setState("offline");
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 30_000);
      }
    })();
    return () => abort.abort();
  }, [client, user, enabled]);

  return state;
}
