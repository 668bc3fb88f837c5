import Box from "@mui/material/Box";
import Card from "@mui/material/Card";
import CardContent from "@mui/material/CardContent";
import Skeleton from "@mui/material/Skeleton";
import Typography from "@mui/material/Typography";
import type { ReactNode } from "react";
import { ErrorAlert } from "./ErrorAlert";

interface PanelProps {
  title: string;
  /** Extra controls on the title row. */
  action?: ReactNode;
  loading?: boolean;
  error?: unknown;
  children?: ReactNode;
  id?: string;
  /** Stretch to the height of its row (side-by-side panels in a grid). */
  fill?: boolean;
}

/** A titled card with the loading and error states every panel needs. */
export function Panel({ title, action, loading, error, children, id, fill }: PanelProps) {
  const headingId = id ? `${id}-title` : undefined;
  return (
    <Card component="section" aria-labelledby={headingId} sx={fill ? { height: "100%" } : undefined}>
      <CardContent>
        <Box sx={{ display: "flex", alignItems: "center", gap: 1, mb: 1.5, flexWrap: "wrap" }}>
          <Typography variant="h6" component="h2" id={headingId} sx={{ flexGrow: 1, fontSize: "1.05rem" }}>
            {title}
          </Typography>
          {action}
        </Box>
        {error ? (
          <ErrorAlert error={error} />
        ) : loading ? (
          <Box role="status" aria-busy="true" aria-label={`Loading ${title.toLowerCase()}`}>
            <Skeleton height={32} />
            <Skeleton height={32} width="70%" />
          </Box>
        ) : (
          children
        )}
      </CardContent>
    </Card>
  );
}
