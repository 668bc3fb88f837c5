// Every reason the coupons service gives for refusing a code, as a sentence a person understands.
// Reasons are the stable ErrorInfo codes of protos/creditmeter/coupons/v1.
import { ApiError } from "../../api/client";
import { errorText } from "../../components/ErrorAlert";

export const REFUSALS: Record<string, string> = {
  COUPON_NOT_FOUND: "There is no coupon with that code. Check the spelling and try again.",
  COUPON_NOT_YET_VALID: "This coupon cannot be used yet. Try again once its offer has started.",
  COUPON_EXPIRED: "This coupon has expired and can no longer be redeemed.",
  COUPON_EXHAUSTED: "This coupon has been used up: it has already been redeemed as many times as allowed.",
  COUPON_ALREADY_REDEEMED: "You have already redeemed this coupon. Each person can use it only so many times.",
  COUPON_DISABLED: "This coupon has been withdrawn and can no longer be redeemed.",
  COUPON_TIER_NOT_ELIGIBLE: "This coupon is not available on your current plan.",
  COUPON_FIRST_TIME_ONLY: "This coupon is only for new users who have never redeemed a coupon before.",
  INVALID_CODE: "That does not look like a coupon code. Codes use letters, digits and dashes.",
};

export function refusalText(error: unknown): string {
  if (error instanceof ApiError && REFUSALS[error.reason]) return REFUSALS[error.reason] ?? "";
  return errorText(error);
}
