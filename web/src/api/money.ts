// Money is integer nano-USD (1 USD = 1,000,000,000 nanos) everywhere. These
// helpers turn it into text and back without ever going through a float:
// BigInt arithmetic builds an exact decimal string, and Intl.NumberFormat
// formats that string (it treats strings as exact decimals) for the locale.

export const NANOS_PER_USD = 1_000_000_000n;

/** An exact decimal string ("-12.345000001") for an amount of nanos. */
export function nanosToDecimal(nanos: bigint): string {
  const negative = nanos < 0n;
  const abs = negative ? -nanos : nanos;
  const whole = abs / NANOS_PER_USD;
  const fraction = (abs % NANOS_PER_USD).toString().padStart(9, "0").replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole.toString()}${fraction ? "." + fraction : ""}`;
}

export interface FormatOptions {
  /** BCP 47 locale; the browser's by default. */
  locale?: string;
  /** Show sub-cent amounts (usage charges) with up to 9 decimals instead of rounding to cents. */
  precise?: boolean;
  /** Always show a sign ("+$1.00"), for credits and debits in a ledger. */
  signed?: boolean;
}

const formatters = new Map<string, Intl.NumberFormat>();

function formatter(locale: string | undefined, digits: number, signed: boolean): Intl.NumberFormat {
  const key = `${locale ?? ""}|${digits}|${signed}`;
  let found = formatters.get(key);
  if (!found) {
    found = new Intl.NumberFormat(locale, {
      style: "currency",
      currency: "USD",
      minimumFractionDigits: 2,
      maximumFractionDigits: digits,
      signDisplay: signed ? "exceptZero" : "auto",
      roundingMode: "halfExpand",
    });
    formatters.set(key, found);
  }
  return found;
}

/** "$1,234.50" (in the browser's locale) for an amount of nanos. */
export function formatUsd(nanos: bigint, options: FormatOptions = {}): string {
  const digits = options.precise ? 9 : 2;
  // Intl.NumberFormat.format accepts a decimal string and formats it exactly.
  const exact = nanosToDecimal(nanos) as unknown as number;
  return formatter(options.locale, digits, options.signed ?? false).format(exact);
}

/** Cents-rounded unless the amount is non-zero and below one cent, which would read as $0.00. */
export function formatUsdAuto(nanos: bigint, options: Omit<FormatOptions, "precise"> = {}): string {
  const abs = nanos < 0n ? -nanos : nanos;
  return formatUsd(nanos, { ...options, precise: abs !== 0n && abs < 10_000_000n });
}

export class MoneyInputError extends Error {}

/** Parses what a person types ("12", "12.5", "$1,000.25") into nanos; refuses more than 9 decimals. */
export function parseUsd(text: string): bigint {
  const cleaned = text.trim().replace(/^\$/, "").replace(/,/g, "");
  const match = /^(\d+)(?:\.(\d{1,9}))?$/.exec(cleaned);
  if (!match) {
    throw new MoneyInputError("Enter an amount in dollars, like 12.50");
  }
  const whole = BigInt(match[1] ?? "0");
  const fraction = BigInt((match[2] ?? "").padEnd(9, "0"));
  return whole * NANOS_PER_USD + fraction;
}

/** A plotting coordinate only (Chart.js needs numbers); never used to show or compute money. */
export function nanosForChart(nanos: bigint): number {
  return Number(nanosToDecimal(nanos));
}
