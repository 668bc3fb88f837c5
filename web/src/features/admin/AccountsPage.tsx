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
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Link as RouterLink } from "react-router";
import { call } from "../../api/client";
import { formatUsd } from "../../api/money";
import { EmptyState } from "../../components/EmptyState";
import { formatDate, tierLabel } from "../../components/format";
import { PageHeader } from "../../components/PageHeader";
import { Panel } from "../../components/Panel";
import { CreditsService } from "../../gen/creditmeter/credits/v1/credits_pb";
import { useTiers } from "../overview/queries";

export default function AccountsPage() {
  const [search, setSearch] = useState("");
  const [tier, setTier] = useState("");
  const [tokens, setTokens] = useState<string[]>([""]);
  const tiers = useTiers();
  const pageToken = tokens[tokens.length - 1] ?? "";
  const accounts = useQuery({
    queryKey: ["admin-accounts", search.trim(), tier, pageToken],
    queryFn: ({ signal }) =>
      call(CreditsService.method.listAccounts, { userIdPrefix: search.trim(), tier, pageSize: 25, pageToken }, signal),
    placeholderData: keepPreviousData,
  });
  const rows = accounts.data?.accounts ?? [];

  return (
    <>
      <PageHeader
        title="Accounts"
        subtitle="Find a user to see their balance, usage and ledger, allocate or refund credits, or change their plan."
      />
      <Panel title="All accounts" id="accounts" error={accounts.error}>
        <Box sx={{ display: "flex", gap: 1.5, flexWrap: "wrap", mb: 2 }}>
          <TextField
            size="small"
            label="Search by user id"
            value={search}
            onChange={(e) => {
              setSearch(e.target.value);
              setTokens([""]);
            }}
            sx={{ minWidth: 240, flexGrow: 1 }}
          />
          <FormControl size="small" sx={{ minWidth: 160 }}>
            <InputLabel id="tier-filter-label">Tier</InputLabel>
            <Select
              labelId="tier-filter-label"
              label="Tier"
              value={tier}
              onChange={(e) => {
                setTier(e.target.value);
                setTokens([""]);
              }}
            >
              <MenuItem value="">All tiers</MenuItem>
              {tiers.data?.tiers.map((t) => (
                <MenuItem key={t.tierId} value={t.tierId}>
                  {t.displayName}
                </MenuItem>
              ))}
            </Select>
          </FormControl>
        </Box>
        {accounts.isPending ? null : rows.length === 0 ? (
          <EmptyState title="No accounts match">Accounts appear when a user first signs in or receives credits.</EmptyState>
        ) : (
          <Box sx={{ overflowX: "auto" }}>
            <Table size="small" aria-labelledby="accounts-title">
              <TableHead>
                <TableRow>
                  <TableCell>User</TableCell>
                  <TableCell>Tier</TableCell>
                  <TableCell align="right">Balance</TableCell>
                  <TableCell align="right">Available</TableCell>
                  <TableCell>Period ends</TableCell>
                </TableRow>
              </TableHead>
              <TableBody>
                {rows.map((a) => (
                  <TableRow key={a.userId} hover>
                    <TableCell>
                      <RouterLink to={`/admin/credits/accounts/${encodeURIComponent(a.userId)}`}>{a.userId}</RouterLink>
                    </TableCell>
                    <TableCell>{tierLabel(a.tier)}</TableCell>
                    <TableCell align="right">{formatUsd(a.balanceNanos)}</TableCell>
                    <TableCell align="right">{formatUsd(a.availableNanos)}</TableCell>
                    <TableCell>{formatDate(a.periodEnd)}</TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          </Box>
        )}
        <Box sx={{ display: "flex", justifyContent: "flex-end", gap: 1, mt: 1.5 }}>
          <Button size="small" disabled={tokens.length <= 1} onClick={() => setTokens(tokens.slice(0, -1))}>
            Previous page
          </Button>
          <Button
            size="small"
            disabled={!accounts.data?.nextPageToken}
            onClick={() => setTokens([...tokens, accounts.data?.nextPageToken ?? ""])}
          >
            Next page
          </Button>
        </Box>
      </Panel>
    </>
  );
}
