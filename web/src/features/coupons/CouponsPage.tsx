import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import Table from "@mui/material/Table";
import TableBody from "@mui/material/TableBody";
import TableCell from "@mui/material/TableCell";
import TableHead from "@mui/material/TableHead";
import TableRow from "@mui/material/TableRow";
import TextField from "@mui/material/TextField";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { call, requestId } from "../../api/client";
import { formatUsd } from "../../api/money";
import { EmptyState } from "../../components/EmptyState";
import { formatDate, tierLabel } from "../../components/format";
import { PageHeader } from "../../components/PageHeader";
import { Panel } from "../../components/Panel";
import { CouponsService, type RedeemCouponResponse } from "../../gen/creditmeter/coupons/v1/coupons_pb";
import { refusalText } from "./refusals";

function grantedText(result: RedeemCouponResponse): string {
  const parts: string[] = [];
  if (result.creditsGrantedNanos > 0n) {
    parts.push(`${formatUsd(result.creditsGrantedNanos)} was added to your balance (now ${formatUsd(result.balanceAfterNanos)}).`);
  }
  if (result.trialTier) {
    parts.push(`You are on the ${tierLabel(result.trialTier)} plan until ${formatDate(result.trialEndsAt, true)}.`);
  }
  return parts.join(" ") || "The coupon was redeemed.";
}

export default function CouponsPage() {
  const client = useQueryClient();
  const [code, setCode] = useState("");
  // One request id per distinct submission: a double click redeems once.
  const [pending, setPending] = useState<{ code: string; id: string } | null>(null);
  const history = useQuery({
    queryKey: ["redemptions", ""],
    queryFn: ({ signal }) => call(CouponsService.method.listRedemptions, { pageSize: 50 }, signal),
  });
  const redeem = useMutation({
    mutationFn: (input: { code: string; id: string }) =>
      call(CouponsService.method.redeemCoupon, { code: input.code, requestId: input.id }),
    onSuccess: () => {
      setCode("");
      setPending(null);
      void client.invalidateQueries({ queryKey: ["balance"] });
      void client.invalidateQueries({ queryKey: ["redemptions"] });
      void client.invalidateQueries({ queryKey: ["transactions"] });
    },
    onError: () => setPending(null),
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    const trimmed = code.trim();
    if (!trimmed || redeem.isPending) return;
    const attempt = pending && pending.code === trimmed ? pending : { code: trimmed, id: requestId() };
    setPending(attempt);
    redeem.mutate(attempt);
  }

  return (
    <>
      <PageHeader title="Coupons" subtitle="Redeem a code for credits or a plan trial." />
      <Box sx={{ display: "grid", gap: 2.5 }}>
        <Panel title="Redeem a coupon" id="redeem">
          <Box component="form" onSubmit={submit} sx={{ display: "flex", gap: 1.5, flexDirection: { xs: "column", sm: "row" } }}>
            <TextField
              label="Coupon code"
              value={code}
              onChange={(e) => setCode(e.target.value)}
              required
              slotProps={{ htmlInput: { maxLength: 64, autoCapitalize: "characters", spellCheck: false } }}
              sx={{ flexGrow: 1 }}
            />
            <Button type="submit" variant="contained" size="large" disabled={redeem.isPending || !code.trim()}>
              Redeem
            </Button>
          </Box>
          {redeem.isSuccess ? (
            <Alert severity="success" role="status" sx={{ mt: 2 }}>
              {grantedText(redeem.data)}
            </Alert>
          ) : null}
          {redeem.isError ? (
            <Alert severity="error" role="alert" sx={{ mt: 2 }}>
              {refusalText(redeem.error)}
            </Alert>
          ) : null}
        </Panel>
        <Panel title="Your redemptions" loading={history.isPending} error={history.error} id="history">
          {history.data && history.data.redemptions.length === 0 ? (
            <EmptyState title="No coupons redeemed yet">Enter a code above — for example one from a welcome email.</EmptyState>
          ) : (
            <Box sx={{ overflowX: "auto" }}>
              <Table size="small" aria-labelledby="history-title">
                <TableHead>
                  <TableRow>
                    <TableCell>Code</TableCell>
                    <TableCell>Granted</TableCell>
                    <TableCell>When</TableCell>
                  </TableRow>
                </TableHead>
                <TableBody>
                  {history.data?.redemptions.map((r) => (
                    <TableRow key={r.redemptionId}>
                      <TableCell>{r.code}</TableCell>
                      <TableCell>
                        {r.grant && r.grant.creditsNanos > 0n ? formatUsd(r.grant.creditsNanos) : ""}
                        {r.grant?.trialTier ? `${tierLabel(r.grant.trialTier)} trial, ${r.grant.trialDays} days` : ""}
                      </TableCell>
                      <TableCell>{formatDate(r.createdAt, true)}</TableCell>
                    </TableRow>
                  ))}
                </TableBody>
              </Table>
            </Box>
          )}
        </Panel>
      </Box>
    </>
  );
}
