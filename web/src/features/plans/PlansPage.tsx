import CheckIcon from "@mui/icons-material/Check";
import CloseIcon from "@mui/icons-material/Close";
import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Card from "@mui/material/Card";
import CardActions from "@mui/material/CardActions";
import CardContent from "@mui/material/CardContent";
import Chip from "@mui/material/Chip";
import Dialog from "@mui/material/Dialog";
import DialogActions from "@mui/material/DialogActions";
import DialogContent from "@mui/material/DialogContent";
import DialogTitle from "@mui/material/DialogTitle";
import Grid from "@mui/material/Grid";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import Typography from "@mui/material/Typography";
import { useState } from "react";
import { useAuth } from "../../app/auth";
import { formatUsd } from "../../api/money";
import { ErrorAlert } from "../../components/ErrorAlert";
import { formatCount } from "../../components/format";
import { PageHeader } from "../../components/PageHeader";
import type { Tier } from "../../gen/creditmeter/credits/v1/credits_pb";
import { useBalance, useTiers } from "../overview/queries";

function price(t: Tier): string {
  return formatUsd(t.priceCents * 10_000_000n).replace(/\.00$/, "");
}

function calls(t: Tier): string {
  return t.apiCallLimit === 0n ? "Unlimited" : `${formatCount(t.apiCallLimit)} / ${t.apiCallPeriod}`;
}

function percent(bps: number): string {
  return `${new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 }).format(bps / 100)}%`;
}

const yes = <CheckIcon color="success" aria-label="Yes" fontSize="small" />;
const no = <CloseIcon color="disabled" aria-label="No" fontSize="small" />;

/** The tier catalog from CompareTiers (nothing hard-coded); public, with the current tier highlighted. */
export default function PlansPage() {
  const { session, config } = useAuth();
  const tiers = useTiers();
  const balance = useBalance("", session?.roles.includes("user") ?? false);
  const current = balance.data?.tier ?? "";
  const [explain, setExplain] = useState<Tier | null>(null);

  function select(tier: Tier) {
    if (config.checkoutUrl) {
      window.location.assign(config.checkoutUrl.replace("{tier}", encodeURIComponent(tier.tierId)));
    } else {
      setExplain(tier);
    }
  }

  const list = tiers.data?.tiers ?? [];
  const rows: { label: string; cell: (t: Tier) => React.ReactNode }[] = [
    { label: "Price", cell: (t) => `${price(t)} / ${t.billingPeriod}` },
    { label: "Platform credits", cell: (t) => `${formatUsd(t.creditsNanos)} / ${t.billingPeriod}` },
    { label: "API calls", cell: calls },
    { label: "Bring your own key", cell: (t) => (t.byokAllowed ? yes : no) },
    { label: "Markup on paid models", cell: (t) => percent(t.markupBasisPoints) },
    { label: "Markup on BYOK calls", cell: (t) => (t.byokAllowed ? percent(t.byokMarkupBasisPoints) : "—") },
    { label: "Free-model fee per 1,000 tokens", cell: (t) => formatUsd(t.freeModelFeePer1kTokensNanos, { precise: true }) },
  ];

  return (
    <>
      <PageHeader title="Plans" subtitle="Every plan includes platform credits each period; pick the one that fits your usage." />
      {tiers.error ? <ErrorAlert error={tiers.error} title="Could not load the plans" /> : null}
      <Grid container spacing={2} sx={{ mb: 4 }}>
        {list.map((t) => {
          const isCurrent = t.tierId === current;
          return (
            <Grid key={t.tierId} size={{ xs: 12, sm: 6, lg: 3 }}>
              <Card
                component="article"
                aria-label={`${t.displayName} plan${isCurrent ? " (your current plan)" : ""}`}
                sx={{
                  height: "100%",
                  display: "flex",
                  flexDirection: "column",
                  borderWidth: isCurrent ? 2 : 1,
                  borderColor: isCurrent ? "primary.main" : undefined,
                }}
              >
                <CardContent sx={{ flexGrow: 1 }}>
                  <Box sx={{ display: "flex", alignItems: "center", gap: 1 }}>
                    <Typography variant="h6" component="h2">
                      {t.displayName}
                    </Typography>
                    {isCurrent ? <Chip size="small" color="primary" label="Current plan" /> : null}
                  </Box>
                  <Typography variant="h4" component="p" sx={{ my: 1 }}>
                    {price(t)}
                    <Typography component="span" color="text.secondary">
                      {" "}
                      / {t.billingPeriod}
                    </Typography>
                  </Typography>
                  <Box component="ul" sx={{ pl: 2.5, m: 0, color: "text.secondary" }}>
                    {t.features.map((f) => (
                      <li key={f}>
                        <Typography variant="body2">{f}</Typography>
                      </li>
                    ))}
                  </Box>
                </CardContent>
                <CardActions sx={{ p: 2 }}>
                  <Button
                    fullWidth
                    variant={isCurrent ? "outlined" : "contained"}
                    disabled={isCurrent}
                    onClick={() => select(t)}
                    aria-label={`Select the ${t.displayName} plan`}
                  >
                    {isCurrent ? "Your plan" : "Select plan"}
                  </Button>
                </CardActions>
              </Card>
            </Grid>
          );
        })}
      </Grid>
      {list.length ? (
        <Card>
          <CardContent>
            <Typography variant="h6" component="h2" id="compare-title" sx={{ mb: 1 }}>
              Compare features
            </Typography>
            <Box sx={{ overflowX: "auto" }}>
              <Table size="small" aria-labelledby="compare-title">
                <TableHead>
                  <TableRow>
                    <TableCell>Feature</TableCell>
                    {list.map((t) => (
                      <TableCell key={t.tierId} align="center" sx={t.tierId === current ? { color: "primary.main" } : undefined}>
                        {t.displayName}
                      </TableCell>
                    ))}
                  </TableRow>
                </TableHead>
                <TableBody>
                  {rows.map((row) => (
                    <TableRow key={row.label}>
                      <TableCell component="th" scope="row">
                        {row.label}
                      </TableCell>
                      {list.map((t) => (
                        <TableCell
                          key={t.tierId}
                          align="center"
                          sx={t.tierId === current ? { bgcolor: "rgba(31,79,209,0.06)" } : undefined}
                        >
                          {row.cell(t)}
                        </TableCell>
                      ))}
                    </TableRow>
                  ))}
                </TableBody>
              </Table>
            </Box>
          </CardContent>
        </Card>
      ) : null}
      <Dialog open={explain !== null} onClose={() => setExplain(null)} aria-labelledby="upgrade-title">
        <DialogTitle id="upgrade-title">Upgrading to {explain?.displayName}</DialogTitle>
        <DialogContent>
          <Alert severity="info">
            Online checkout is not set up on this platform yet. Ask your administrator to move your account to the {explain?.displayName}{" "}
            plan; they can change it from the admin Accounts page, and your new allocation starts right away.
          </Alert>
        </DialogContent>
        <DialogActions>
          <Button onClick={() => setExplain(null)}>Close</Button>
        </DialogActions>
      </Dialog>
    </>
  );
}
