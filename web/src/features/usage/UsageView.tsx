import Box from "@mui/material/Box";
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
import { useQuery } from "@tanstack/react-query";
import type { TooltipItem } from "chart.js";
import { useState } from "react";
import { Bar } from "react-chartjs-2";
import { call } from "../../api/client";
import { formatUsdAuto, nanosForChart } from "../../api/money";
import { palette } from "../../components/charts";
import { EmptyState } from "../../components/EmptyState";
import { enumLabel, enumOf, formatCount, lastDays } from "../../components/format";
import { Panel } from "../../components/Panel";
import { MeteringService, ServiceUsageSchema } from "../../gen/creditmeter/metering/v1/metering_pb";
import { GetUsageByDateRequestSchema } from "../../gen/creditmeter/metering/v1/metering_pb";

const serviceEnum = enumOf(ServiceUsageSchema, "service");
const granularityEnum = enumOf(GetUsageByDateRequestSchema, "granularity");
const DAY = granularityEnum.values.find((v) => v.name.endsWith("DAY"))?.number ?? 1;
const MONTH = granularityEnum.values.find((v) => v.name.endsWith("MONTH"))?.number ?? 2;

const RANGES = [
  { days: 7, label: "Last 7 days" },
  { days: 30, label: "Last 30 days" },
  { days: 90, label: "Last 90 days" },
  { days: 365, label: "Last 12 months" },
];

function moneyTooltip(values: bigint[]) {
  return (item: TooltipItem<"bar">) => `${item.dataset.label ?? ""}: ${formatUsdAuto(values[item.dataIndex] ?? 0n)}`;
}

const noUsage = (
  <EmptyState title="No usage in this range">
    Usage appears here as soon as your apps make metered calls (chat, speech, embeddings…). Try a longer range, or make a first call.
  </EmptyState>
);

/** Usage charts and their tables for one account ("" = the signed-in user). */
export function UsageView({ user }: { user: string }) {
  const [range, setRange] = useState(() => lastDays(30));
  const days = range.days;
  const [granularity, setGranularity] = useState<"day" | "month">("day");
  const window = { startTime: range.startTime, endTime: range.endTime, key: `${days}` };
  const base = { userId: user, startTime: window.startTime, endTime: window.endTime };
  const byDate = useQuery({
    queryKey: ["usage", user, "by-date", window.key, granularity],
    queryFn: ({ signal }) =>
      call(MeteringService.method.getUsageByDate, { ...base, granularity: granularity === "day" ? DAY : MONTH }, signal),
  });
  const byModel = useQuery({
    queryKey: ["usage", user, "by-model", window.key],
    queryFn: ({ signal }) => call(MeteringService.method.getUsageByModel, base, signal),
  });
  const summary = useQuery({
    queryKey: ["usage", user, "summary-range", window.key],
    queryFn: ({ signal }) => call(MeteringService.method.getUsageSummary, base, signal),
  });

  const dates = byDate.data?.rows ?? [];
  const models = [...(byModel.data?.rows ?? [])].sort((a, b) => (b.chargedNanos > a.chargedNanos ? 1 : -1));
  const services = summary.data?.byService ?? [];

  return (
    <Box sx={{ display: "grid", gap: 2.5 }}>
      <Box sx={{ display: "flex", gap: 1.5, flexWrap: "wrap", alignItems: "center" }}>
        <FormControl size="small" sx={{ minWidth: 180 }}>
          <InputLabel id="range-label">Range</InputLabel>
          <Select labelId="range-label" label="Range" value={days} onChange={(e) => setRange(lastDays(Number(e.target.value)))}>
            {RANGES.map((r) => (
              <MenuItem key={r.days} value={r.days}>
                {r.label}
              </MenuItem>
            ))}
          </Select>
        </FormControl>
        <ToggleButtonGroup
          size="small"
          exclusive
          value={granularity}
          onChange={(_, value: "day" | "month" | null) => value && setGranularity(value)}
          aria-label="Group by"
        >
          <ToggleButton value="day">By day</ToggleButton>
          <ToggleButton value="month">By month</ToggleButton>
        </ToggleButtonGroup>
        {summary.data?.totals ? (
          <Box sx={{ ml: { sm: "auto" }, color: "text.secondary" }} data-testid="usage-totals">
            {formatCount(summary.data.totals.eventCount)} {summary.data.totals.eventCount === 1n ? "call" : "calls"} ·{" "}
            {formatUsdAuto(summary.data.totals.chargedNanos)} charged
          </Box>
        ) : null}
      </Box>

      <Panel title="Cost and tokens by date" loading={byDate.isPending} error={byDate.error} id="by-date">
        {dates.length === 0 ? (
          noUsage
        ) : (
          <>
            <Box sx={{ height: 280 }}>
              <Bar
                role="img"
                aria-label={`Bar chart of cost by ${granularity} over ${days} days`}
                data={{
                  labels: dates.map((d) => d.date),
                  datasets: [
                    { label: "Charged", data: dates.map((d) => nanosForChart(d.chargedNanos)), backgroundColor: palette[0], yAxisID: "y" },
                    {
                      label: "Tokens",
                      data: dates.map((d) => Number(d.inputTokens + d.outputTokens)),
                      backgroundColor: palette[1] + "88",
                      yAxisID: "tokens",
                    },
                  ],
                }}
                options={{
                  plugins: {
                    tooltip: {
                      callbacks: {
                        label: (item) =>
                          item.datasetIndex === 0
                            ? moneyTooltip(dates.map((d) => d.chargedNanos))(item)
                            : `Tokens: ${formatCount(Number(item.raw))}`,
                      },
                    },
                  },
                  scales: {
                    y: { position: "left", title: { display: true, text: "USD" } },
                    tokens: { position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "Tokens" } },
                  },
                }}
              />
            </Box>
            <Box sx={{ overflowX: "auto", mt: 2 }}>
              <Table size="small" aria-label="Usage by date">
                <TableHead>
                  <TableRow>
                    <TableCell>{granularity === "day" ? "Day" : "Month"}</TableCell>
                    <TableCell align="right">Calls</TableCell>
                    <TableCell align="right">Input tokens</TableCell>
                    <TableCell align="right">Output tokens</TableCell>
                    <TableCell align="right">Charged</TableCell>
                  </TableRow>
                </TableHead>
                <TableBody>
                  {dates.map((d) => (
                    <TableRow key={d.date}>
                      <TableCell>{d.date}</TableCell>
                      <TableCell align="right">{formatCount(d.eventCount)}</TableCell>
                      <TableCell align="right">{formatCount(d.inputTokens)}</TableCell>
                      <TableCell align="right">{formatCount(d.outputTokens)}</TableCell>
                      <TableCell align="right">{formatUsdAuto(d.chargedNanos)}</TableCell>
                    </TableRow>
                  ))}
                </TableBody>
              </Table>
            </Box>
          </>
        )}
      </Panel>

      <Grid container spacing={2.5}>
        <Grid size={{ xs: 12, lg: 7 }}>
          <Panel title="Cost by model" loading={byModel.isPending} error={byModel.error} id="by-model" fill>
            {models.length === 0 ? (
              noUsage
            ) : (
              <>
                <Box sx={{ height: Math.max(160, models.length * 36) }}>
                  <Bar
                    role="img"
                    aria-label="Bar chart of cost by model"
                    data={{
                      labels: models.map((m) => m.model || "(none)"),
                      datasets: [{ label: "Charged", data: models.map((m) => nanosForChart(m.chargedNanos)), backgroundColor: palette[0] }],
                    }}
                    options={{
                      indexAxis: "y",
                      plugins: {
                        legend: { display: false },
                        tooltip: { callbacks: { label: moneyTooltip(models.map((m) => m.chargedNanos)) } },
                      },
                    }}
                  />
                </Box>
                <Box sx={{ overflowX: "auto", mt: 2 }}>
                  <Table size="small" aria-label="Usage by model">
                    <TableHead>
                      <TableRow>
                        <TableCell>Model</TableCell>
                        <TableCell align="right">Calls</TableCell>
                        <TableCell align="right">Tokens</TableCell>
                        <TableCell align="right">Charged</TableCell>
                      </TableRow>
                    </TableHead>
                    <TableBody>
                      {models.map((m) => (
                        <TableRow key={m.model}>
                          <TableCell sx={{ overflowWrap: "anywhere" }}>{m.model || "(none)"}</TableCell>
                          <TableCell align="right">{formatCount(m.eventCount)}</TableCell>
                          <TableCell align="right">{formatCount(m.inputTokens + m.outputTokens)}</TableCell>
                          <TableCell align="right">{formatUsdAuto(m.chargedNanos)}</TableCell>
                        </TableRow>
                      ))}
                    </TableBody>
                  </Table>
                </Box>
              </>
            )}
          </Panel>
        </Grid>
        <Grid size={{ xs: 12, lg: 5 }}>
          <Panel title="Cost by service" loading={summary.isPending} error={summary.error} id="by-service" fill>
            {services.length === 0 ? (
              noUsage
            ) : (
              <>
                <Box sx={{ height: 200 }}>
                  <Bar
                    role="img"
                    aria-label="Bar chart of cost by service"
                    data={{
                      labels: services.map((s) => enumLabel(serviceEnum, s.service)),
                      datasets: [
                        {
                          label: "Charged",
                          data: services.map((s) => nanosForChart(s.totals?.chargedNanos ?? 0n)),
                          backgroundColor: services.map((_, i) => palette[i % palette.length] ?? "#1f4fd1"),
                        },
                      ],
                    }}
                    options={{
                      plugins: {
                        legend: { display: false },
                        tooltip: { callbacks: { label: moneyTooltip(services.map((s) => s.totals?.chargedNanos ?? 0n)) } },
                      },
                    }}
                  />
                </Box>
                <Box sx={{ overflowX: "auto", mt: 2 }}>
                  <Table size="small" aria-label="Usage by service">
                    <TableHead>
                      <TableRow>
                        <TableCell>Service</TableCell>
                        <TableCell align="right">Calls</TableCell>
                        <TableCell align="right">Charged</TableCell>
                      </TableRow>
                    </TableHead>
                    <TableBody>
                      {services.map((s) => (
                        <TableRow key={s.service}>
                          <TableCell>{enumLabel(serviceEnum, s.service)}</TableCell>
                          <TableCell align="right">{formatCount(s.totals?.eventCount ?? 0n)}</TableCell>
                          <TableCell align="right">{formatUsdAuto(s.totals?.chargedNanos ?? 0n)}</TableCell>
                        </TableRow>
                      ))}
                    </TableBody>
                  </Table>
                </Box>
              </>
            )}
          </Panel>
        </Grid>
      </Grid>
    </Box>
  );
}
