import Box from "@mui/material/Box";
import Typography from "@mui/material/Typography";
import type { ReactNode } from "react";

/** What to show instead of an empty table or chart: what it means and what to do. */
export function EmptyState({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <Box sx={{ textAlign: "center", py: 4, px: 2, color: "text.secondary" }} role="status">
      <Typography variant="subtitle1" component="p" sx={{ fontWeight: 650, color: "text.primary" }}>
        {title}
      </Typography>
      {children ? (
        <Typography variant="body2" component="div" sx={{ mt: 0.5, maxWidth: 520, mx: "auto" }}>
          {children}
        </Typography>
      ) : null}
    </Box>
  );
}
