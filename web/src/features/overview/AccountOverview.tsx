import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Card from "@mui/material/Card";
import CardContent from "@mui/material/CardContent";
import Grid from "@mui/material/Grid";
import LinearProgress from "@mui/material/LinearProgress";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import Typography from "@mui/material/Typography";
import { Link as RouterLink } from "react-router";
import { formatUsd, formatUsdAuto } from "../../api/money";
import { EmptyState } from "../../components/EmptyState";
import { ErrorAlert } from "../../components/ErrorAlert";
import { enumLabel, enumOf, formatCount, formatDate, tierLabel, toDate } from "../../components/format";
import { Panel } from "../../components/Panel";
import { GrantSummarySchema } from "../../gen/creditmeter/credits/v1/credits_pb";
import { forecast, upgradeAdvice } from "./forecast";
import { useBalance, useTiers, useUsageSummary } from "./queries";

const sourceEnum = enumOf(GrantSummarySchema, "source");

function Stat({ label, value, hint, testId }: { label: string; value: string; hint?: string; testId: string }) {
  return (
    <Card sx={{ height: "100%" }}>
      <CardContent>
        <Typography variant="body2" color="text.secondary" component="h2" id={`${testId}-label`}>
          {label}
        </Typography>
        <Typography
          variant="h4"
          component="p"
          aria-labelledby={`${testId}-label`}
          data-testid={testId}
          sx={{ mt: 0.5, fontSize: { xs: "1.5rem", sm: "2rem" } }}
        >
          {value}
        </Typography>
        {hint ? (
          <Typography variant="body2" color="text.secondary">
            {hint}
          </Typography>
        ) : null}
      </CardContent>
    </Card>
  );
}

/** Balance, quota, spend, forecast and expiring credits of one account ("" = the signed-in user). */
export function AccountOverview({ user }: { user: string }) {
  const balance = useBalance(user);
  const periodStart = balance.data ? toDate(balance.data.periodStart) : null;
  const summary = useUsageSummary(user, periodStart);
  const tiers = useTiers();

  if (balance.error) return <ErrorAlert error={balance.error} title="Could not load the balance" />;
  if (!balance.data) {
    return <LinearProgress aria-label="Loading the balance" />;
  }
  const b = balance.data;
  const periodEnd = toDate(b.periodEnd);
  const spent = summary.data?.totals?.chargedNanos ?? 0n;
  const used = summary.data?.callsUsed ?? 0n;
  const limit = summary.data?.callsLimit ?? 0n;
  const tier = tiers.data?.tiers.find((t) => t.tierId === b.tier);
  const projection = periodStart && periodEnd ? forecast(b.availableNanos, spent, periodStart, periodEnd, new Date()) : null;
  const advice = tiers.data && summary.data ? upgradeAdvice(tiers.data.tiers, b.tier, spent, used, limit) : null;
  const percent = limit > 0n ? Number((used * 100n) / limit) : 0;

  return (
    <Box sx={{ display: "grid", gap: 2.5 }}>
      {advice && !user ? (
        <Alert
          severity="info"
          action={
            <Button component={RouterLink} to="/credits/tiers" color="inherit" size="small">
              Compare plans
            </Button>
          }
        >
          {advice.why}
        </Alert>
      ) : null}
      <Grid container spacing={2}>
        <Grid size={{ xs: 12, sm: 6, lg: 3 }}>
          <Stat
            label="Balance"
            value={formatUsd(b.balanceNanos, { precise: true })}
            testId="balance"
            hint="Credits you own, held ones included"
          />
        </Grid>
        <Grid size={{ xs: 12, sm: 6, lg: 3 }}>
          <Stat label="Available" value={formatUsd(b.availableNanos, { precise: true })} testId="available" hint="Balance minus holds" />
        </Grid>
        <Grid size={{ xs: 12, sm: 6, lg: 3 }}>
          <Stat label="Held" value={formatUsd(b.heldNanos, { precise: true })} testId="held" hint="Reserved by calls in progress" />
        </Grid>
        <Grid size={{ xs: 12, sm: 6, lg: 3 }}>
          <Stat label="Tier" value={tier?.displayName ?? tierLabel(b.tier)} testId="tier" hint={`Period ends ${formatDate(b.periodEnd)}`} />
        </Grid>
      </Grid>
      <Grid container spacing={2}>
        <Grid size={{ xs: 12, md: 6 }}>
          <Panel title="API calls this period" loading={summary.isPending} error={summary.error} id="quota" fill>
            {limit > 0n ? (
              <>
                <Typography variant="body1" sx={{ mb: 1 }}>
                  <strong>{formatCount(used)}</strong> of {formatCount(limit)} calls used
                </Typography>
                <LinearProgress
                  variant="determinate"
                  value={Math.min(100, percent)}
                  color={percent >= 90 ? "error" : percent >= 75 ? "warning" : "primary"}
                  aria-label="API calls used of the quota"
                  sx={{ height: 10, borderRadius: 5 }}
                />
              </>
            ) : (
              <Typography>
                <strong>{formatCount(used)}</strong> calls — unlimited on this tier
              </Typography>
            )}
          </Panel>
        </Grid>
        <Grid size={{ xs: 12, md: 6 }}>
          <Panel title="Spend this period" loading={summary.isPending} error={summary.error} id="spend" fill>
            <Typography variant="h5" component="p" data-testid="spend">
              {formatUsdAuto(spent)}
            </Typography>
            <Typography variant="body2" color="text.secondary">
              {projection?.runsOutAt
                ? projection.beforePeriodEnd
                  ? `At this rate your available credits run out around ${formatDate(projection.runsOutAt)}, before the period ends.`
                  : `At this rate your credits last past the end of the period (${formatDate(b.periodEnd)}).`
                : "Nothing spent yet this period, so there is no forecast."}
            </Typography>
          </Panel>
        </Grid>
      </Grid>
      <Panel title="Credits that expire" id="expiring">
        {b.expiring.length === 0 ? (
          <EmptyState title="No credits are due to expire">
            Credits with an expiry date (monthly allocations, some coupons) show up here.
          </EmptyState>
        ) : (
          <Box sx={{ overflowX: "auto" }}>
            <Table size="small" aria-labelledby="expiring-title">
              <TableHead>
                <TableRow>
                  <TableCell>Source</TableCell>
                  <TableCell align="right">Remaining</TableCell>
                  <TableCell>Expires</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {b.expiring.map((g) => (
                  <TableRow key={g.grantId}>
                    <TableCell>{enumLabel(sourceEnum, g.source)}</TableCell>
                    <TableCell align="right">{formatUsdAuto(g.remainingNanos)}</TableCell>
                    <TableCell>{g.expiresAt ? formatDate(g.expiresAt, true) : "Never"}</TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </Box>
        )}
      </Panel>
    </Box>
  );
}
