import { describe, expect, it } from "vitest";
import { formatUsd, formatUsdAuto, MoneyInputError, nanosToDecimal, parseUsd } from "./money";

describe("nanosToDecimal", () => {
  it("is exact where floating point is not", () => {
    // 0.1 + 0.2 in floats is 0.30000000000000004; in nanos it is exact.
    expect(nanosToDecimal(100_000_000n + 200_000_000n)).toBe("0.3");
    expect(nanosToDecimal(1n)).toBe("0.000000001");
    expect(nanosToDecimal(-1_500_000_000n)).toBe("-1.5");
    expect(nanosToDecimal(0n)).toBe("0");
  });

  it("keeps amounts beyond 2^53 nanos exact", () => {
    // 999,999.99 dollars plus one nano: more digits than a double can hold.
    expect(nanosToDecimal(999_999_990_000_000_001n)).toBe("999999990.000000001");
    expect(nanosToDecimal(9_223_372_036_854_775_807n)).toBe("9223372036.854775807");
  });
});

describe("formatUsd", () => {
  it("formats dollars and cents for the locale", () => {
    expect(formatUsd(1_234_500_000_000n, { locale: "en-US" })).toBe("$1,234.50");
    expect(formatUsd(1_234_500_000_000n, { locale: "de-DE" })).toBe("1.234,50\u00a0$");
  });

  it("rounds half up to the cent from the exact value", () => {
    expect(formatUsd(5_000_000n, { locale: "en-US" })).toBe("$0.01");
    expect(formatUsd(4_999_999n, { locale: "en-US" })).toBe("$0.00");
  });

  it("shows sub-cent charges exactly when asked", () => {
    expect(formatUsd(75n, { locale: "en-US", precise: true })).toBe("$0.000000075");
    expect(formatUsdAuto(1_230_000n, { locale: "en-US" })).toBe("$0.00123");
    expect(formatUsdAuto(20_000_000_000n, { locale: "en-US" })).toBe("$20.00");
  });

  it("signs ledger amounts", () => {
    expect(formatUsd(-250_000_000n, { locale: "en-US", signed: true })).toBe("-$0.25");
    expect(formatUsd(10_000_000_000n, { locale: "en-US", signed: true })).toBe("+$10.00");
  });

  it("formats the largest balance without losing a nano", () => {
    expect(formatUsd(9_223_372_036_854_775_807n, { locale: "en-US", precise: true })).toBe("$9,223,372,036.854775807");
  });
});

describe("parseUsd", () => {
  it("parses what people type into exact nanos", () => {
    expect(parseUsd("12")).toBe(12_000_000_000n);
    expect(parseUsd("$1,000.25")).toBe(1_000_250_000_000n);
    expect(parseUsd("0.000000001")).toBe(1n);
    expect(parseUsd(" 0.1 ")).toBe(100_000_000n);
  });

  it("refuses what is not an amount", () => {
    for (const bad of ["", "abc", "-5", "1.0000000001", "1e3", "1.2.3"]) {
      expect(() => parseUsd(bad)).toThrow(MoneyInputError);
    }
  });
});
