import { useQuery } from "@tanstack/react-query";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { call } from "../../api/client";
import { CreditsService } from "../../gen/creditmeter/credits/v1/credits_pb";
import { MeteringService } from "../../gen/creditmeter/metering/v1/metering_pb";

/** Query keys. `user` is "" for the signed-in user's own data, or the user an admin looks at. */
export const keys = {
  balance: (user: string) => ["balance", user] as const,
  summary: (user: string, from: string) => ["usage", user, "summary", from] as const,
  tiers: ["tiers"] as const,
};

export function useBalance(user: string, enabled = true) {
  return useQuery({
    queryKey: keys.balance(user),
    enabled,
    queryFn: ({ signal }) => call(CreditsService.method.getBalance, { userId: user }, signal),
  });
}

export function useTiers() {
  return useQuery({
    queryKey: keys.tiers,
    queryFn: ({ signal }) => call(CreditsService.method.compareTiers, {}, signal),
    staleTime: 10 * 60_000,
  });
}

export function useUsageSummary(user: string, from: Date | null) {
  return useQuery({
    queryKey: keys.summary(user, from?.toISOString() ?? ""),
    enabled: from !== null,
    queryFn: ({ signal }) =>
      call(MeteringService.method.getUsageSummary, { userId: user, startTime: from ? timestampFromDate(from) : undefined }, signal),
  });
}
