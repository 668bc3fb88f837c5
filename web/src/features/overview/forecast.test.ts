import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { TierSchema } from "../../gen/creditmeter/credits/v1/credits_pb";
import { forecast, upgradeAdvice } from "./forecast";

const USD = 1_000_000_000n;
const tiers = [
  create(TierSchema, { tierId: "trial", displayName: "Trial", priceCents: 400n, creditsNanos: 1n * USD, apiCallLimit: 100n }),
  create(TierSchema, { tierId: "starter", displayName: "Starter", priceCents: 1900n, creditsNanos: 20n * USD, apiCallLimit: 1000n }),
  create(TierSchema, {
    tierId: "professional",
    displayName: "Professional",
    priceCents: 4900n,
    creditsNanos: 60n * USD,
    apiCallLimit: 10000n,
  }),
];

describe("forecast", () => {
  it("projects when the balance runs out at the average spend so far", () => {
    const start = new Date("2026-01-01T00:00:00Z");
    const now = new Date("2026-01-03T00:00:00Z"); // two days in, $2 spent: $1/day
    const result = forecast(5n * USD, 2n * USD, start, new Date("2026-02-01T00:00:00Z"), now);
    expect(result.runsOutAt?.toISOString()).toBe("2026-01-08T00:00:00.000Z");
    expect(result.beforePeriodEnd).toBe(true);
  });

  it("has nothing to say without spend", () => {
    expect(forecast(5n * USD, 0n, new Date(0), new Date(1e9), new Date(1e6)).runsOutAt).toBeNull();
  });
});

describe("upgradeAdvice", () => {
  it("suggests the tier whose credits would have covered the overage more cheaply", () => {
    // On trial ($4) spending $30 costs 4 + 29 = $33; starter costs 19 + 10 = $29.
    expect(upgradeAdvice(tiers, "trial", 30n * USD, 0n, 100n)?.tier.tierId).toBe("starter");
  });

  it("stays quiet when the current tier is the cheapest for the usage", () => {
    expect(upgradeAdvice(tiers, "trial", USD / 2n, 10n, 100n)).toBeNull();
  });

  it("points at more API calls when the quota is nearly used", () => {
    expect(upgradeAdvice(tiers, "trial", 0n, 85n, 100n)?.tier.tierId).toBe("starter");
  });
});
