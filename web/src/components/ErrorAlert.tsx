import Alert from "@mui/material/Alert";
import { ApiError } from "../api/client";

/** The server's own words (and its reason code) for a failed call, never a stack trace. */
export function errorText(error: unknown): string {
  if (error instanceof ApiError) return sentence(error.message);
  if (error instanceof Error && error.message) return sentence(error.message);
  return "Something went wrong. Please try again.";
}

function sentence(text: string): string {
  const trimmed = text.trim();
  if (!trimmed) return "Something went wrong. Please try again.";
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

export function ErrorAlert({ error, title }: { error: unknown; title?: string }) {
  const reason = error instanceof ApiError ? error.reason : "";
  return (
    <Alert severity="error" role="alert">
      {title ? <strong>{title}: </strong> : null}
      {errorText(error)}
      {reason ? <span style={{ opacity: 0.7 }}> ({reason})</span> : null}
    </Alert>
  );
}
