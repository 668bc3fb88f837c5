// CSV export of transactions: exact decimal dollars (no locale, no rounding), RFC 4180 quoting.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { nanosToDecimal } from "../../api/money";
import { enumLabel, enumOf } from "../../components/format";
import { TransactionSchema, type Transaction } from "../../gen/creditmeter/credits/v1/credits_pb";

const kindEnum = enumOf(TransactionSchema, "kind");

export function signedAmount(tx: Transaction): bigint {
  return tx.creditAccount === `user:${tx.userId}` ? tx.amountNanos : -tx.amountNanos;
}

export function reference(tx: Transaction): string {
  const audit = tx.audit;
  if (!audit) return "";
  if (audit.actorRole === "admin") return `Admin ${audit.actorSubject}${audit.reason ? `: ${audit.reason}` : ""}`;
  if (audit.service.includes("coupon") || audit.actorSubject.includes("coupon"))
    return `Coupon ${audit.referenceId || audit.reason}`.trim();
  if (audit.model || audit.service.includes("metering")) {
    return [audit.model, audit.referenceId ? `event ${audit.referenceId}` : ""].filter(Boolean).join(" · ");
  }
  return audit.reason || audit.referenceId;
}

function quote(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

export function toCsv(rows: Transaction[]): string {
  const header = ["created_at", "transaction_id", "kind", "amount_usd", "balance_after_usd", "reference", "reason", "model"];
  const lines = rows.map((tx) =>
    [
      tx.createdAt ? timestampDate(tx.createdAt).toISOString() : "",
      tx.transactionId,
      enumLabel(kindEnum, tx.kind),
      nanosToDecimal(signedAmount(tx)),
      nanosToDecimal(tx.balanceAfterNanos),
      reference(tx),
      tx.audit?.reason ?? "",
      tx.audit?.model ?? "",
    ]
      .map(quote)
      .join(","),
  );
  return [header.join(","), ...lines].join("\r\n") + "\r\n";
}
