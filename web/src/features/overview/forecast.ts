// Overview arithmetic, in integer nanos and milliseconds (BigInt), never floats.
import type { Tier } from "../../gen/creditmeter/credits/v1/credits_pb";

export interface Forecast {
  /** When the available balance runs out at this period's average spend; null when nothing is spent. */
  runsOutAt: Date | null;
  /** Whether that happens before the period ends (and the next allocation arrives). */
  beforePeriodEnd: boolean;
}

export function forecast(availableNanos: bigint, spentNanos: bigint, periodStart: Date, periodEnd: Date, now: Date): Forecast {
  const elapsed = BigInt(Math.max(1, now.getTime() - periodStart.getTime()));
  if (spentNanos <= 0n) return { runsOutAt: null, beforePeriodEnd: false };
  // available / (spent / elapsed) milliseconds from now.
  const msLeft = (availableNanos * elapsed) / spentNanos;
  const runsOutAt = new Date(now.getTime() + Number(msLeft > 10n ** 15n ? 10n ** 15n : msLeft));
  return { runsOutAt, beforePeriodEnd: runsOutAt.getTime() < periodEnd.getTime() };
}

export interface UpgradeAdvice {
  tier: Tier;
  why: string;
}

/**
 * A higher tier that would have been cheaper for this period's usage: paying the
 * current price plus the spend beyond the included credits costs more than the
 * higher tier's price (whose credits cover the spend), or the API-call quota is
 * nearly used up and a higher tier has more calls.
 */
export function upgradeAdvice(
  tiers: Tier[],
  currentId: string,
  spentNanos: bigint,
  callsUsed: bigint,
  callsLimit: bigint,
): UpgradeAdvice | null {
  const ordered = [...tiers];
  const index = ordered.findIndex((t) => t.tierId === currentId);
  const current = ordered[index];
  if (!current) return null;
  const centsToNanos = 10_000_000n;
  const overage = spentNanos > current.creditsNanos ? spentNanos - current.creditsNanos : 0n;
  const currentCost = current.priceCents * centsToNanos + overage;
  for (const candidate of ordered.slice(index + 1)) {
    const candidateOverage = spentNanos > candidate.creditsNanos ? spentNanos - candidate.creditsNanos : 0n;
    const candidateCost = candidate.priceCents * centsToNanos + candidateOverage;
    if (overage > 0n && candidateCost < currentCost) {
      return {
        tier: candidate,
        why: `Your usage this period would have cost less on ${candidate.displayName}, whose monthly credits cover it.`,
      };
    }
  }
  if (callsLimit > 0n && callsUsed * 10n >= callsLimit * 8n) {
    const more = ordered.slice(index + 1).find((t) => t.apiCallLimit === 0n || t.apiCallLimit > callsLimit);
    if (more) return { tier: more, why: `You have used ${callsUsed} of ${callsLimit} API calls; ${more.displayName} includes more.` };
  }
  return null;
}
