import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import FormControl from "@mui/material/FormControl";
import Grid from "@mui/material/Grid";
import InputLabel from "@mui/material/InputLabel";
import MenuItem from "@mui/material/MenuItem";
import Select from "@mui/material/Select";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import ToggleButton from "@mui/material/ToggleButton";
import ToggleButtonGroup from "@mui/material/ToggleButtonGroup";
import Typography from "@mui/material/Typography";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Bar } from "react-chartjs-2";
import { Link as RouterLink } from "react-router";
import { call, requestId } from "../../api/client";
import { formatUsd, formatUsdAuto, nanosForChart } from "../../api/money";
import { palette } from "../../components/charts";
import { EmptyState } from "../../components/EmptyState";
import { ErrorAlert } from "../../components/ErrorAlert";
import { enumOf, formatCount, formatDate, lastDays, tierLabel } from "../../components/format";
import { PageHeader } from "../../components/PageHeader";
import { Panel } from "../../components/Panel";
import { CreditsService, GetPlatformReportRequestSchema } from "../../gen/creditmeter/credits/v1/credits_pb";
import {
  EventState,
  MeteringService,
  type RecordedEvent,
  type RetryParkedEventsResponse,
} from "../../gen/creditmeter/metering/v1/metering_pb";

const intervalEnum = enumOf(GetPlatformReportRequestSchema, "interval");
const DAY = intervalEnum.values.find((v) => v.name.endsWith("DAY"))?.number ?? 1;
const MONTH = intervalEnum.values.find((v) => v.name.endsWith("MONTH"))?.number ?? 2;
const PARKED_KEY = ["parked-events"];

/** What a retry did, in words: how many went back into the pipeline and where they stand now. */
function retrySummary(answer: RetryParkedEventsResponse): string {
  const retried = answer.results.filter((r) => r.retried);
  const count = (...states: EventState[]) => retried.filter((r) => states.includes(r.event?.state ?? EventState.UNSPECIFIED)).length;
  const parts = [`${retried.length} of ${answer.results.length} retried`];
  const charged = count(EventState.CHARGED, EventState.SHORTFALL);
  const pending = count(EventState.PENDING);
  const parkedAgain = count(EventState.PARKED);
  if (charged) parts.push(`${charged} charged`);
  if (pending) parts.push(`${pending} still being charged`);
  if (parkedAgain) parts.push(`${parkedAgain} parked again (see the reason)`);
  return `${parts.join(", ")}.`;
}

const eventKey = (e: RecordedEvent) => `${e.event?.userId ?? ""}/${e.event?.eventId ?? ""}`;

/** The first cells of a pipeline event's row (pending and parked lists): event, user, recorded, attempts. */
function EventCells({ event: e }: { event: RecordedEvent }) {
  return (
    <>
      <TableCell sx={{ overflowWrap: "anywhere" }}>{e.event?.eventId}</TableCell>
      <TableCell>
        <RouterLink to={`/admin/credits/accounts/${encodeURIComponent(e.event?.userId ?? "")}`}>{e.event?.userId}</RouterLink>
      </TableCell>
      <TableCell>{formatDate(e.recordedAt, true)}</TableCell>
      <TableCell align="right">{formatCount(e.attempts)}</TableCell>
    </>
  );
}

/** The headings of EventCells' columns. */
function EventHeadCells() {
  return (
    <>
      <TableCell>Event</TableCell>
      <TableCell>User</TableCell>
      <TableCell>Recorded</TableCell>
      <TableCell align="right">Attempts</TableCell>
    </>
  );
}

/** Usage revenue and grants across all users (credits.GetPlatformReport, admin only). */
export default function PlatformPage() {
  const [range, setRange] = useState(() => lastDays(30));
  const days = range.days;
  const [monthly, setMonthly] = useState(false);
  const report = useQuery({
    queryKey: ["platform", days, monthly],
    queryFn: ({ signal }) =>
      call(
        CreditsService.method.getPlatformReport,
        { startTime: range.startTime, endTime: range.endTime, interval: monthly ? MONTH : DAY, topUsersCount: 10 },
        signal,
      ),
  });
  // Usage the pipeline gave up charging (state PARKED, with its reason): an operator's to-do list.
  const parked = useQuery({
    queryKey: PARKED_KEY,
    queryFn: ({ signal }) => call(MeteringService.method.listParkedEvents, { pageSize: 50 }, signal),
  });
  // Usage recorded and not charged yet: normally empty; a backlog means credits or openrouter is away
  // (the outbox charges it once they are back). Refreshed while the page is open.
  const pending = useQuery({
    queryKey: ["pending-events"],
    queryFn: ({ signal }) => call(MeteringService.method.listPendingEvents, { pageSize: 50 }, signal),
    refetchInterval: 15_000,
  });
  // Once their cause is fixed (e.g. the model is in the catalog now), parked events go back into the
  // pipeline. One request id per retry: a double click retries once.
  const client = useQueryClient();
  const [retryId, setRetryId] = useState(requestId);
  const retry = useMutation({
    mutationFn: (eventIds: string[]) => call(MeteringService.method.retryParkedEvents, { eventIds, requestId: retryId }),
    onSuccess: () => {
      setRetryId(requestId());
      void client.invalidateQueries({ queryKey: PARKED_KEY });
    },
  });
  const parkedIds = (parked.data?.events ?? []).map((e) => e.event?.eventId ?? "").filter(Boolean);
  const r = report.data;
  const total = r ? r.byDate.reduce((sum, d) => sum + d.usageRevenueNanos, 0n) : 0n;
  const subscriptions = r ? r.byTier.reduce((sum, t) => sum + t.priceCents * t.accountCount * 10_000_000n, 0n) : 0n;

  return (
    <>
      <PageHeader
        title="Platform"
        subtitle="Usage revenue across all users, by date, model and tier, and the top spenders."
        action={
          <Box sx={{ display: "flex", gap: 1.5, flexWrap: "wrap" }}>
            <FormControl size="small" sx={{ minWidth: 160 }}>
              <InputLabel id="platform-range-label">Range</InputLabel>
              <Select
                labelId="platform-range-label"
                label="Range"
                value={days}
                onChange={(e) => setRange(lastDays(Number(e.target.value)))}
              >
                <MenuItem value={7}>Last 7 days</MenuItem>
                <MenuItem value={30}>Last 30 days</MenuItem>
                <MenuItem value={90}>Last 90 days</MenuItem>
                <MenuItem value={365}>Last 12 months</MenuItem>
              </Select>
            </FormControl>
            <ToggleButtonGroup
              size="small"
              exclusive
              value={monthly ? "month" : "day"}
              onChange={(_, v: string | null) => v && setMonthly(v === "month")}
              aria-label="Group by"
            >
              <ToggleButton value="day">By day</ToggleButton>
              <ToggleButton value="month">By month</ToggleButton>
            </ToggleButtonGroup>
          </Box>
        }
      />
      <Box sx={{ display: "grid", gap: 2.5 }}>
        <Grid container spacing={2}>
          <Grid size={{ xs: 12, sm: 6 }}>
            <Panel title="Usage revenue in range" loading={report.isPending} error={report.error} id="platform-total" fill>
              <Typography variant="h4" component="p" data-testid="platform-revenue">
                {formatUsdAuto(total)}
              </Typography>
            </Panel>
          </Grid>
          <Grid size={{ xs: 12, sm: 6 }}>
            <Panel title="Subscriptions per period (at list price)" loading={report.isPending} error={report.error} id="platform-subs" fill>
              <Typography variant="h4" component="p">
                {formatUsd(subscriptions)}
              </Typography>
            </Panel>
          </Grid>
        </Grid>
        <Panel title="Revenue by date" loading={report.isPending} error={report.error} id="platform-by-date">
          {r && r.byDate.length === 0 ? (
            <EmptyState title="No money moved in this range">Charges and grants across all users appear here.</EmptyState>
          ) : r ? (
            <>
              <Box sx={{ height: 260 }}>
                <Bar
                  role="img"
                  aria-label="Bar chart of usage revenue and grants by date"
                  data={{
                    labels: r.byDate.map((d) => d.date),
                    datasets: [
                      {
                        label: "Usage revenue",
                        data: r.byDate.map((d) => nanosForChart(d.usageRevenueNanos)),
                        backgroundColor: palette[0],
                      },
                      { label: "Granted", data: r.byDate.map((d) => nanosForChart(d.grantedNanos)), backgroundColor: palette[2] },
                    ],
                  }}
                />
              </Box>
              <Box sx={{ overflowX: "auto", mt: 2 }}>
                <Table size="small" aria-label="Revenue by date">
                  <TableHead>
                    <TableRow>
                      <TableCell>Date</TableCell>
                      <TableCell align="right">Usage revenue</TableCell>
                      <TableCell align="right">Granted</TableCell>
                      <TableCell align="right">Active users</TableCell>
                      <TableCell align="right">Charges</TableCell>
                    </TableRow>
                  </TableHead>
                  <TableBody>
                    {r.byDate.map((d) => (
                      <TableRow key={d.date}>
                        <TableCell>{d.date}</TableCell>
                        <TableCell align="right">{formatUsdAuto(d.usageRevenueNanos)}</TableCell>
                        <TableCell align="right">{formatUsd(d.grantedNanos)}</TableCell>
                        <TableCell align="right">{formatCount(d.activeUserCount)}</TableCell>
                        <TableCell align="right">{formatCount(d.chargeCount)}</TableCell>
                      </TableRow>
                    ))}
                  </TableBody>
                </Table>
              </Box>
            </>
          ) : null}
        </Panel>
        <Grid container spacing={2.5}>
          <Grid size={{ xs: 12, lg: 6 }}>
            <Panel title="By model" loading={report.isPending} error={report.error} id="platform-by-model" fill>
              {r && r.byModel.length === 0 ? <EmptyState title="No usage charges in this range" /> : null}
              {r && r.byModel.length ? (
                <Table size="small" aria-labelledby="platform-by-model-title">
                  <TableHead>
                    <TableRow>
                      <TableCell>Model</TableCell>
                      <TableCell align="right">Charges</TableCell>
                      <TableCell align="right">Revenue</TableCell>
                    </TableRow>
                  </TableHead>
                  <TableBody>
                    {r.byModel.map((m) => (
                      <TableRow key={m.model}>
                        <TableCell sx={{ overflowWrap: "anywhere" }}>{m.model || "(none)"}</TableCell>
                        <TableCell align="right">{formatCount(m.chargeCount)}</TableCell>
                        <TableCell align="right">{formatUsdAuto(m.usageRevenueNanos)}</TableCell>
                      </TableRow>
                    ))}
                  </TableBody>
                </Table>
              ) : null}
            </Panel>
          </Grid>
          <Grid size={{ xs: 12, lg: 6 }}>
            <Panel title="By tier" loading={report.isPending} error={report.error} id="platform-by-tier" fill>
              {r ? (
                <Table size="small" aria-labelledby="platform-by-tier-title">
                  <TableHead>
                    <TableRow>
                      <TableCell>Tier</TableCell>
                      <TableCell align="right">Accounts</TableCell>
                      <TableCell align="right">Usage revenue</TableCell>
                    </TableRow>
                  </TableHead>
                  <TableBody>
                    {r.byTier.map((t) => (
                      <TableRow key={t.tier}>
                        <TableCell>{tierLabel(t.tier)}</TableCell>
                        <TableCell align="right">{formatCount(t.accountCount)}</TableCell>
                        <TableCell align="right">{formatUsdAuto(t.usageRevenueNanos)}</TableCell>
                      </TableRow>
                    ))}
                  </TableBody>
                </Table>
              ) : null}
            </Panel>
          </Grid>
        </Grid>
        <Panel title="Top users" loading={report.isPending} error={report.error} id="platform-top">
          {r && r.topUsers.length === 0 ? <EmptyState title="Nobody spent credits in this range" /> : null}
          {r && r.topUsers.length ? (
            <Table size="small" aria-labelledby="platform-top-title">
              <TableHead>
                <TableRow>
                  <TableCell>User</TableCell>
                  <TableCell>Tier</TableCell>
                  <TableCell align="right">Spent</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {r.topUsers.map((u) => (
                  <TableRow key={u.userId}>
                    <TableCell>
                      <RouterLink to={`/admin/credits/accounts/${encodeURIComponent(u.userId)}`}>{u.userId}</RouterLink>
                    </TableCell>
                    <TableCell>{tierLabel(u.tier)}</TableCell>
                    <TableCell align="right">{formatUsdAuto(u.usageRevenueNanos)}</TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          ) : null}
        </Panel>
        <Panel title="Pending usage events" loading={pending.isPending} error={pending.error} id="platform-pending">
          {pending.data && pending.data.events.length === 0 ? (
            <EmptyState title="Nothing waiting to be charged">
              Usage is charged as it is recorded. Events wait here only while credits or openrouter is away.
            </EmptyState>
          ) : null}
          {pending.data && pending.data.events.length ? (
            <>
              <Typography variant="body2" sx={{ mb: 1 }} data-testid="pending-total">
                {pending.data.total >= 100_000n ? "At least 100,000" : formatCount(pending.data.total)} waiting to be charged, oldest first.
                The pipeline retries them by itself.
              </Typography>
              <Table size="small" aria-labelledby="platform-pending-title">
                <TableHead>
                  <TableRow>
                    <EventHeadCells />
                    <TableCell>Last error</TableCell>
                    <TableCell>Next attempt</TableCell>
                  </TableRow>
                </TableHead>
                <TableBody>
                  {pending.data.events.map((e) => (
                    <TableRow key={eventKey(e)}>
                      <EventCells event={e} />
                      <TableCell sx={{ overflowWrap: "break-word" }}>{e.lastError || "—"}</TableCell>
                      <TableCell>{formatDate(e.nextAttemptAt, true)}</TableCell>
                    </TableRow>
                  ))}
                </TableBody>
              </Table>
            </>
          ) : null}
        </Panel>
        <Panel
          title="Parked usage events"
          loading={parked.isPending}
          error={parked.error}
          id="platform-parked"
          action={
            parkedIds.length ? (
              <Button size="small" variant="outlined" disabled={retry.isPending} onClick={() => retry.mutate(parkedIds)}>
                Retry all shown
              </Button>
            ) : null
          }
        >
          {retry.isError ? (
            <Box sx={{ mb: 1.5 }}>
              <ErrorAlert error={retry.error} />
            </Box>
          ) : null}
          {retry.data ? (
            <Alert severity="info" role="status" sx={{ mb: 1.5 }} onClose={() => retry.reset()}>
              {retrySummary(retry.data)}
            </Alert>
          ) : null}
          {parked.data && parked.data.events.length === 0 ? (
            <EmptyState title="No parked usage events">
              Usage the pipeline could not charge after its retries appears here with the reason.
            </EmptyState>
          ) : null}
          {parked.data && parked.data.events.length ? (
            <Table size="small" aria-labelledby="platform-parked-title">
              <TableHead>
                <TableRow>
                  <EventHeadCells />
                  <TableCell>Reason</TableCell>
                  <TableCell>Actions</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {parked.data.events.map((e) => (
                  <TableRow key={eventKey(e)}>
                    <EventCells event={e} />
                    <TableCell sx={{ overflowWrap: "anywhere" }}>{e.parkReason}</TableCell>
                    <TableCell>
                      <Button
                        size="small"
                        disabled={retry.isPending}
                        onClick={() => retry.mutate([e.event?.eventId ?? ""])}
                        aria-label={`Retry ${e.event?.eventId ?? ""}`}
                      >
                        Retry
                      </Button>
                    </TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          ) : null}
        </Panel>
      </Box>
    </>
  );
}
