// Dates and enum labels for display, in the browser's locale.
import type { DescEnum, DescMessage } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";

/** A report range: the last ``days`` days, ending a minute after the moment it is chosen (so usage
 * recorded right after still counts). Made when the user picks a range, never while rendering. */
export interface DayRange {
  days: number;
  startTime: Timestamp;
  endTime: Timestamp;
}

export function lastDays(days: number): DayRange {
  const end = new Date(Date.now() + 60_000);
  return { days, startTime: timestampFromDate(new Date(end.getTime() - days * 86_400_000)), endTime: timestampFromDate(end) };
}

export function toDate(ts: Timestamp | undefined): Date | null {
  return ts ? timestampDate(ts) : null;
}

export function formatDate(ts: Timestamp | Date | undefined | null, withTime = false): string {
  if (!ts) return "—";
  const date = ts instanceof Date ? ts : timestampDate(ts);
  return new Intl.DateTimeFormat(undefined, withTime ? { dateStyle: "medium", timeStyle: "short" } : { dateStyle: "medium" }).format(date);
}

export function formatCount(value: bigint | number): string {
  return new Intl.NumberFormat().format(value);
}

/** "Tier allocation" for TIER_ALLOCATION or TRANSACTION_KIND_TIER_ALLOCATION (prefixes come and go). */
export function enumLabel(desc: DescEnum, value: number): string {
  const found = desc.values.find((v) => v.number === value);
  if (!found) return "Unknown";
  let name = found.name;
  const typePrefix = desc.name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase() + "_";
  for (const prefix of [desc.sharedPrefix?.toUpperCase() ?? "", typePrefix]) {
    if (prefix && name.startsWith(prefix)) name = name.slice(prefix.length);
  }
  // Short names are acronyms (LLM, TTS, STT): keep them in capitals.
  if (name.length <= 3) return name;
  const words = name.toLowerCase().replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** The enum's values except UNSPECIFIED (0), for filters and forms. */
export function enumChoices(desc: DescEnum): { value: number; label: string }[] {
  return desc.values.filter((v) => v.number !== 0).map((v) => ({ value: v.number, label: enumLabel(desc, v.number) }));
}

export function tierLabel(tier: string): string {
  return tier ? tier.charAt(0).toUpperCase() + tier.slice(1) : "—";
}

/** The enum type of a message's field, looked up at run time (so moving an enum between protos breaks nothing). */
export function enumOf(schema: DescMessage, localName: string): DescEnum {
  const field = schema.field[localName];
  if (!field || field.fieldKind !== "enum") throw new Error(`${schema.typeName}.${localName} is not an enum field`);
  return field.enum;
}
