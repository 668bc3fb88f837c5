import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import FormControl from "@mui/material/FormControl";
import InputLabel from "@mui/material/InputLabel";
import MenuItem from "@mui/material/MenuItem";
import Select from "@mui/material/Select";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import TextField from "@mui/material/TextField";
import Typography from "@mui/material/Typography";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";
import { call } from "../../api/client";
import { formatUsd, formatUsdAuto } from "../../api/money";
import { EmptyState } from "../../components/EmptyState";
import { ErrorAlert } from "../../components/ErrorAlert";
import { enumChoices, enumLabel, enumOf, formatDate } from "../../components/format";
import { Panel } from "../../components/Panel";
import {
  CreditsService,
  ListTransactionsRequestSchema,
  TransactionSchema,
  type Transaction,
} from "../../gen/creditmeter/credits/v1/credits_pb";
import { reference, signedAmount, toCsv } from "./csv";

const kindEnum = enumOf(TransactionSchema, "kind");
const kindChoices = enumChoices(enumOf(ListTransactionsRequestSchema, "kind"));
const PAGE = 20;

interface Filters {
  kind: number;
  from: string;
  to: string;
}

function range(filters: Filters) {
  // Local calendar days: from the start of `from` to the end of `to`.
  const start = filters.from ? new Date(`${filters.from}T00:00:00`) : null;
  const end = filters.to ? new Date(new Date(`${filters.to}T00:00:00`).getTime() + 86_400_000) : null;
  return {
    kind: filters.kind,
    startTime: start ? timestampFromDate(start) : undefined,
    endTime: end ? timestampFromDate(end) : undefined,
  };
}

async function allRows(user: string, filters: Filters): Promise<Transaction[]> {
  const rows: Transaction[] = [];
  let token = "";
  for (let page = 0; page < 40; page++) {
    const response = await call(CreditsService.method.listTransactions, {
      userId: user,
      pageSize: 500,
      pageToken: token,
      ...range(filters),
    });
    rows.push(...response.transactions);
    token = response.nextPageToken;
    if (!token) break;
  }
  return rows;
}

function download(name: string, text: string) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** A user's ledger, filtered and paged; `rowAction` adds a per-row control (the admin's refund). */
export function TransactionsTable({ user, rowAction }: { user: string; rowAction?: (tx: Transaction) => ReactNode }) {
  const [filters, setFilters] = useState<Filters>({ kind: 0, from: "", to: "" });
  const [tokens, setTokens] = useState<string[]>([""]);
  const [exporting, setExporting] = useState<unknown>(null);
  const pageToken = tokens[tokens.length - 1] ?? "";
  const query = useQuery({
    queryKey: ["transactions", user, filters, pageToken],
    queryFn: ({ signal }) =>
      call(CreditsService.method.listTransactions, { userId: user, pageSize: PAGE, pageToken, ...range(filters) }, signal),
    placeholderData: keepPreviousData,
  });
  const change = (next: Partial<Filters>) => {
    setFilters({ ...filters, ...next });
    setTokens([""]);
  };
  const rows = query.data?.transactions ?? [];

  return (
    <Panel
      title="Transactions"
      id="transactions"
      action={
        <Button
          variant="outlined"
          size="small"
          onClick={() => {
            setExporting(null);
            allRows(user, filters)
              .then((all) => download(`transactions${user ? "-" + user : ""}.csv`, toCsv(all)))
              .catch((e: unknown) => setExporting(e));
          }}
        >
          Export CSV
        </Button>
      }
    >
      <Box sx={{ display: "flex", gap: 1.5, flexWrap: "wrap", mb: 2 }}>
        <FormControl size="small" sx={{ minWidth: 180 }}>
          <InputLabel id="kind-filter-label">Kind</InputLabel>
          <Select labelId="kind-filter-label" label="Kind" value={filters.kind} onChange={(e) => change({ kind: Number(e.target.value) })}>
            <MenuItem value={0}>All kinds</MenuItem>
            {kindChoices.map((c) => (
              <MenuItem key={c.value} value={c.value}>
                {c.label}
              </MenuItem>
            ))}
          </Select>
        </FormControl>
        <TextField
          size="small"
          type="date"
          label="From"
          value={filters.from}
          onChange={(e) => change({ from: e.target.value })}
          slotProps={{ inputLabel: { shrink: true } }}
        />
        <TextField
          size="small"
          type="date"
          label="To"
          value={filters.to}
          onChange={(e) => change({ to: e.target.value })}
          slotProps={{ inputLabel: { shrink: true } }}
        />
      </Box>
      {exporting ? <ErrorAlert error={exporting} title="Export failed" /> : null}
      {query.error ? (
        <ErrorAlert error={query.error} />
      ) : query.isPending ? (
        <Typography aria-busy="true">Loading transactions…</Typography>
      ) : rows.length === 0 ? (
        <EmptyState title="No transactions match">
          {filters.kind || filters.from || filters.to
            ? "Try another kind or a wider date range."
            : "Credits you receive and spend will be listed here."}
        </EmptyState>
      ) : (
        <Box sx={{ overflowX: "auto" }}>
          <Table size="small" aria-labelledby="transactions-title">
            <TableHead>
              <TableRow>
                <TableCell>Date</TableCell>
                <TableCell>Kind</TableCell>
                <TableCell align="right">Amount</TableCell>
                <TableCell align="right">Balance after</TableCell>
                <TableCell>Reference</TableCell>
                {rowAction ? <TableCell>Actions</TableCell> : null}
              </TableRow>
            </TableHead>
            <TableBody>
              {rows.map((tx) => {
                const amount = signedAmount(tx);
                return (
                  <TableRow key={tx.transactionId} data-testid="transaction-row">
                    <TableCell sx={{ whiteSpace: "nowrap" }}>{formatDate(tx.createdAt, true)}</TableCell>
                    <TableCell>{enumLabel(kindEnum, tx.kind)}</TableCell>
                    <TableCell
                      align="right"
                      sx={{ color: amount < 0n ? "error.main" : "success.main", fontWeight: 600, whiteSpace: "nowrap" }}
                    >
                      {formatUsdAuto(amount, { signed: true })}
                    </TableCell>
                    <TableCell align="right">{formatUsd(tx.balanceAfterNanos, { precise: true })}</TableCell>
                    <TableCell sx={{ maxWidth: 320, overflowWrap: "anywhere" }}>{reference(tx)}</TableCell>
                    {rowAction ? <TableCell>{rowAction(tx)}</TableCell> : null}
                  </TableRow>
                );
              })}
            </TableBody>
          </Table>
        </Box>
      )}
      <Box sx={{ display: "flex", justifyContent: "flex-end", gap: 1, mt: 1.5 }}>
        <Button size="small" disabled={tokens.length <= 1} onClick={() => setTokens(tokens.slice(0, -1))}>
          Previous page
        </Button>
        <Button size="small" disabled={!query.data?.nextPageToken} onClick={() => setTokens([...tokens, query.data?.nextPageToken ?? ""])}>
          Next page
        </Button>
      </Box>
    </Panel>
  );
}
